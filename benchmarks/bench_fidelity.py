"""World-model fidelity against speed on held-out real episodes (a seed the training never saw).

    python benchmarks/bench_fidelity.py --bundle runs/wm_pusht/bundle --heldout datasets/pusht_heldout.h5 \
        [--nfe 1 2 3] [--precision fp32 bf16] [--start-sigma 0 0.5 1] [--probe pusht] [--write-card]

For each number of denoising steps (NFE) and sampling precision (float32, or the denoiser under bf16
autocast as the learned envs run it on CPUs with fast bf16): imagined-step throughput of the global model at batch 64, and
open-loop errors at 1/4/16 steps (PSNR, reward error, state-probe errors, and where the real passive object
moved, the gain and cosine of the model's displacement of it along the true one) of the diffusion model next to
the RSSM-alone forward model, to copying the last real frame ("persist"), to the true future frame through the
autoencoder ("autoencoder", the floor of any latent model) and to the probe on real frames ("real"); the drift of a scene at rest under
zero actions ("hold", object permanence alone: its true future is the start frame); for each sampler start
(``--start-sigma``: 0 = from pure noise, > 0 = from the last latent noised to that σ); plus the cosine between FoG's
surrogate gradient and a finite-difference gradient through the diffusion model, and the cosines of FoG's
gradient, of the RSSM's along the true frames and of the diffusion model's own differences with the *true*
gradient (finite differences through the reference system). Prints a table, writes ``benchmarks/results/fidelity_<task>.json``,
and with ``--write-card`` stores the figures at the default NFE in the bundle's card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.bundle import update_card  # noqa: E402
from fog_envs.wm.fidelity import FidelityConfig, hold_still, open_loop, reference_gradient_cosine  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@torch.no_grad()
def global_steps_per_s(model: WorldModel, nfe: int, bf16: bool, batch: int = 64, repeats: int = 10,
                       guide=None) -> float:
    """Imagined steps/s of the global step (denoiser sampling + reward model + RSSM filter; a state-guided
    model: the state model's step + denoiser sampling + reward model)."""
    from fog_envs.runtime import autocast

    dev = next(model.parameters()).device
    ctx = model.start_latents[:batch].float().repeat((batch + len(model.start_latents) - 1) // len(model.start_latents), 1, 1, 1, 1)[:batch]
    act = torch.zeros(batch, model.context_len, model.task.action_dim, device=dev)
    x = torch.zeros(batch, model.local_state_dim if guide is None else guide.dim, device=dev)
    with autocast(dev, bf16):
        for i in range(repeats + 2):
            if i == 2:
                t0 = time.perf_counter()
            if guide is None:
                z = model.next_latent(ctx, act, None, nfe)
                model.filter_step(x, act[:, -1], z)
            else:
                x_next = guide.step(x, act[:, -1])
                z = model.next_latent(ctx, act, None, nfe, state=guide.guide_states(x, x_next))
            model.reward(z)
    return batch * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--grad-windows", type=int, default=FidelityConfig().grad_windows,
                        help="held-out windows for the gradient cosine (2·H·|A| diffusion rollouts each)")
    parser.add_argument("--start-sigma", type=float, nargs="+", default=None,
                        help="sampler starts to compare (default: the bundle's own)")
    parser.add_argument("--probe", default=None,
                        help="read every frame with this bundle's state probe instead of the bundle's own (one ruler "
                             "for bundles whose probes differ; the probe reads frames, so any bundle of the task)")
    parser.add_argument("--state-model", default=None,
                        help="the state model (bundle name or path) that supplies a state-guided bundle's states")
    parser.add_argument("--write-card", action="store_true")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/fidelity_<task>.json)")
    args = parser.parse_args()
    if args.write_card and args.probe:
        parser.error("--write-card stores the bundle's own figures: drop --probe (another bundle's probe)")
    if args.write_card and args.grad_windows == 0:
        parser.error("--write-card stores the gradient cosines too: --grad-windows must be > 0")
    if args.grad_windows < 0:
        parser.error(f"--grad-windows must be >= 0 (0 skips the gradient cosines), got {args.grad_windows}")
    torch.set_num_threads(args.threads)
    model = WorldModel.load(args.bundle)
    if args.probe:
        ruler = WorldModel.load(args.probe)
        if ruler.config.task != model.config.task:
            parser.error(f"--probe {args.probe} is a {ruler.config.task} bundle, --bundle a {model.config.task} one")
        model.probe = ruler.probe
    data = load_play_arrays(args.heldout, model.config.task)
    guide = None
    if model.state_guided:
        from fog_envs.learned.state_local import StateLocalModel
        from fog_envs.wm.state_model import StateModel

        if args.state_model is None:
            parser.error(f"{args.bundle} is state-guided: pass --state-model (the state model that supplies its states)")
        if args.grad_windows:
            parser.error("the gradient cosines are not measured for state-guided bundles: pass --grad-windows 0")
        guide = StateLocalModel(model, StateModel.load(args.state_model, task=model.config.task)[0])
    elif args.state_model is not None:
        parser.error(f"--state-model is for state-guided bundles; {args.bundle} is not one")
    rows = []
    own_start = model.config.edm.start_sigma
    for start_sigma in args.start_sigma or [own_start]:
        model.set_sampler(start_sigma=start_sigma)
        for nfe in args.nfe:
            for precision in args.precision:
                bf16 = precision == "bf16"
                fcfg = FidelityConfig(num_windows=args.windows, denoising_steps=nfe, bf16=bf16)
                rows.append({"nfe": nfe, "precision": precision, "start_sigma": start_sigma,
                             "global_steps_per_s": global_steps_per_s(model, nfe, bf16, guide=guide),
                             "open_loop": open_loop(model, data, fcfg, guide), "hold": hold_still(model, data, fcfg, guide)})
    model.set_sampler(start_sigma=own_start)
    grad = (reference_gradient_cosine(model, data, FidelityConfig(grad_windows=args.grad_windows))
            if args.grad_windows else None)
    probe_keys = [k for k in rows[0]["open_loop"]["diffusion"]["16"] if k.startswith("probe_") and k.endswith("median")]
    print(f"task {model.config.task}: {rows[0]['open_loop']['windows']} held-out windows")
    head = ["model", "NFE", "precision", "start σ", "steps/s", "h"] + ["psnr", "reward_err"] + [k[6:-7] for k in probe_keys] + ["gain", "cos"]
    print(" | ".join(f"{h:>10}" for h in head))
    table = []
    for r in rows:
        for kind in ("diffusion", "rssm", "persist", "autoencoder", "real"):
            if kind == "diffusion" or r is rows[0]:
                table.append((kind, r, r["open_loop"][kind]))
        table.append(("hold", r, r["hold"]["diffusion"]))
        if r is rows[0]:
            table.append(("hold rssm", r, r["hold"]["rssm"]))
    for kind, r, by_h in table:
        sampled = kind in ("diffusion", "hold")
        for h, m in by_h.items():
            vals = [m.get("psnr_median", m.get("ae_psnr_median")), m.get("reward_abs_err_median", float("nan"))]
            vals += [m.get(k, float("nan")) for k in probe_keys]
            vals += [m.get("passive_gain_median", float("nan")), m.get("passive_cos_median", float("nan"))]
            sps = r["global_steps_per_s"] if kind == "diffusion" else float("nan")
            print(" | ".join(f"{v:>10}" for v in [kind, r["nfe"] if sampled else "-", r["precision"] if sampled else "-",
                                                   r["start_sigma"] if sampled else "-", f"{sps:.0f}", h])
                  + " | " + " | ".join(f"{v:>10.3f}" for v in vals))
    if grad is None:
        print("gradient cosines skipped (--grad-windows 0)")
    else:
        print(f"gradient cosine (surrogate vs finite differences through diffusion, H={grad['grad_horizon']}): "
              f"mean {grad['grad_cosine_mean']:.3f}, median {grad['grad_cosine_median']:.3f}")
        print(f"against the true gradient (finite differences through {model.task.real_env_id}), cosine mean / median: "
              f"FoG's surrogate {grad['true_cos_fog_mean']:.3f} / {grad['true_cos_fog_median']:.3f}, the RSSM along "
              f"the true frames {grad['true_cos_rssm_on_reference_mean']:.3f} / "
              f"{grad['true_cos_rssm_on_reference_median']:.3f}, differences through diffusion "
              f"{grad['true_cos_diffusion_fd_mean']:.3f} / {grad['true_cos_diffusion_fd_median']:.3f}")
    out = {"bundle": args.bundle, "probe": args.probe or args.bundle, "heldout": args.heldout,
           "state_model": args.state_model,
           "task": model.config.task, "rows": rows, "gradient": grad, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.out) if args.out else RESULTS / f"fidelity_{model.config.task}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    os.replace(tmp, path)
    if args.write_card:
        from fog_envs.runtime import use_bf16

        shipped = "bf16" if use_bf16(torch.device("cpu")) else "fp32"  # what the learned envs run here
        default = next((r for r in rows if r["nfe"] == model.config.edm.num_steps and r["precision"] == shipped
                        and r["start_sigma"] == own_start), rows[0])
        update_card(args.bundle, fidelity={"heldout": args.heldout, "nfe": default["nfe"],
                                           "precision": default["precision"],
                                           "global_steps_per_s_batch64": default["global_steps_per_s"],
                                           "open_loop": default["open_loop"], "hold": default["hold"],
                                           "gradient": grad})


if __name__ == "__main__":
    main()
