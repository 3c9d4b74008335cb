"""The Push-T agent finder: the SSD map by hand, a fitted template finds a drawn disc's pixel among distractors,
refine's layout, errors that name the problem, bundles and the reader chain, the CLI, and the shipped finder
against the shipped probe on fresh reset frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fog_envs.wm.agent_finder import AgentFinder, AgentFinderConfig, fit_agent_finder
from fog_envs.wm.bundle import BundleError
from fog_envs.wm.readers import load_reader, refine_all

SMALL = AgentFinderConfig(image_size=16, half=1)
BLUE, GREY, WHITE = (65, 105, 225), (119, 136, 153), (255, 255, 255)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16 × 16 white frames, each with a 2 × 2 grey square somewhere and a blue plus (the 'agent') centred on a
    random pixel away from the edge; the agents' true positions in table px (32 px per pixel, at pixel centres)."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, 16, 16, 3), WHITE, dtype=np.uint8)
    pix = rng.integers(2, 14, size=(n, 2))
    for i, (c, r) in enumerate(pix):
        gr, gc = rng.integers(0, 15, size=2)
        frames[i, gr:gr + 2, gc:gc + 2] = GREY
        frames[i, r, c - 1:c + 2] = BLUE
        frames[i, r - 1:r + 2, c] = BLUE
    return frames, (pix + 0.5) * 32.0


def test_mismatch_is_the_sum_of_squared_differences_by_hand():
    finder = AgentFinder(SMALL)
    g = torch.Generator().manual_seed(0)
    finder.template.copy_(torch.rand(3, 3, 3, generator=g, dtype=torch.float64))
    frames = torch.randint(0, 256, (1, 16, 16, 3), generator=g, dtype=torch.uint8)
    ssd = finder.mismatch(frames)
    x = frames[0].double() / 255.0
    crop = x[4:7, 9:12].permute(2, 0, 1)  # centre pixel: row 5, column 10
    assert ssd[0, 5, 10].item() == pytest.approx(((crop - finder.template) ** 2).sum().item(), rel=1e-12)
    # at the corner the frame is zero outside: the template's out-of-frame part counts in full
    padded = torch.zeros(3, 3, 3, dtype=torch.float64)
    padded[:, 1:, 1:] = x[0:2, 0:2].permute(2, 0, 1)
    assert ssd[0, 0, 0].item() == pytest.approx(((padded - finder.template) ** 2).sum().item(), rel=1e-12)


def test_fitted_template_finds_the_agents_pixel_among_distractors_and_refine_replaces_only_the_agent():
    frames, agents = _synthetic(200, 0)
    finder = fit_agent_finder(frames, agents, SMALL)
    # the template is the plus: blue at the centre and the four sides, white at the corners
    np.testing.assert_allclose(finder.template[:, 1, 1].numpy() * 255, BLUE)
    np.testing.assert_allclose(finder.template[:, 0, 0].numpy() * 255, WHITE, atol=255 * 0.1)
    test_frames, test_agents = _synthetic(100, 1)
    np.testing.assert_allclose(finder.locate(test_frames).numpy(), test_agents)
    readings = torch.rand(100, 6, dtype=torch.float32, generator=torch.Generator().manual_seed(2))
    out = finder.refine(test_frames, readings)
    assert out.dtype == readings.dtype and out is not readings
    np.testing.assert_allclose(out[:, :2].numpy(), test_agents / 512.0, rtol=1e-6)
    assert torch.equal(out[:, 2:], readings[:, 2:])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="half"):
        AgentFinderConfig(image_size=16, half=8)
    with pytest.raises(ValueError, match="image_size"):
        AgentFinderConfig(image_size=0)
    finder = AgentFinder(SMALL)
    with pytest.raises(ValueError, match=r"frames of shape \(N, 16, 16, 3\)"):
        finder.locate(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"readings \(N, 6\)"):
        finder.refine(np.zeros((2, 16, 16, 3), np.uint8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="differ in number"):
        finder.refine(np.zeros((2, 16, 16, 3), np.uint8), torch.zeros(3, 6))
    with pytest.raises(ValueError, match="one \\(x, y\\) agent position per frame"):
        fit_agent_finder(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((3, 2)), SMALL)
    with pytest.raises(ValueError, match="no frames"):
        fit_agent_finder(np.zeros((0, 16, 16, 3), np.uint8), np.zeros((0, 2)), SMALL)


def test_bundle_round_trip_loads_as_a_reader_and_other_formats_are_refused(tmp_path, debug_bundle):
    frames, agents = _synthetic(50, 3)
    finder = fit_agent_finder(frames, agents, SMALL)
    finder.save(tmp_path / "finder", {"frames": 50})
    loaded, card = AgentFinder.load(tmp_path / "finder")
    assert card == {"frames": 50} and loaded.config == SMALL
    assert torch.equal(loaded.template, finder.template)
    chained = load_reader(tmp_path / "finder")
    assert isinstance(chained, AgentFinder)
    readings = torch.zeros(50, 6, dtype=torch.float64)
    assert torch.equal(refine_all([chained], frames, readings), finder.refine(frames, readings))
    with pytest.raises(BundleError, match="not a fog-agent-finder config"):
        AgentFinder.load(debug_bundle)


def test_cli_fits_on_rendered_frames_and_writes_a_card(tmp_path, debug_bundle, capsys):
    from fog_envs.wm.agent_finder_cli import main

    out = tmp_path / "finder"
    assert main(["--out", str(out), "--bundle", str(debug_bundle), "--frames", "20", "--heldout", "6",
                 "--seed", "5", "--threads", "1"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["frames"] == 20 and card["bundle"] == str(debug_bundle)
    assert set(card["heldout_errors"]) == {"resets", "near_goal"}
    for errors in card["heldout_errors"].values():
        assert set(errors) == {"finder", "probe"}
        # one pixel of the 64 × 64 frame is 8 px: the finder lands on the agent's pixel or a neighbour
        assert errors["finder"]["agent_px_max"] < 12.0
    assert "agent finder written" in capsys.readouterr().out


def test_shipped_finder_finds_every_agent_the_shipped_probe_misreads():
    """On 300 fresh reset frames (seeds the fit never saw; agent and block anywhere), the shipped probe misreads
    the agent by more than 20 px on some (measured: 17 % of 1,000, up to 144 px) and the finder on none (it lands on
    the agent's pixel of the 64 × 64 frame or a neighbour; measured at most 7.8 px over 2,000 held-out frames)."""
    from fog_envs.wm.agent_finder_cli import agent_errors, reset_frames
    from fog_envs.wm.model import WorldModel

    finder, card = AgentFinder.load("pusht_agent_finder")
    assert card["config"] == {"image_size": 64, "half": 1}
    frames, states = reset_frames(300, 7_000_000)
    with torch.no_grad():
        probe = WorldModel.load("pusht").probe(torch.from_numpy(frames)).double()[:, :2].numpy() * 512.0
    ours, theirs = agent_errors(finder.locate(frames).numpy(), states[:, :2]), agent_errors(probe, states[:, :2])
    assert theirs["share_over_20px"] > 0.05
    assert ours["agent_px_max"] < 12.0


def test_reading_bench_writes_each_chain_on_both_kinds_of_frames(tmp_path, capsys):
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.bench_agent_reading import main, parse_chain

    assert parse_chain("probe=") == ("probe", ())
    assert parse_chain("f=pusht_agent_finder,pusht_local_reader") == ("f", ("pusht_agent_finder", "pusht_local_reader"))
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=READER"):
        parse_chain("pusht_local_reader")
    out = tmp_path / "reading.json"
    assert main(["--frames", "8", "--seed", "11", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"probe", "deployed", "finder"}
    for chain in result["results"].values():
        assert set(chain) == {"resets", "near_goal"}
    # the finder changes the agent only: the block reads as in the deployed chain
    for kind in ("resets", "near_goal"):
        f, d = result["results"]["finder"][kind], result["results"]["deployed"][kind]
        assert f["block_px_median"] == d["block_px_median"] and f["agent_px_max"] < 12.0
    assert "finder" in capsys.readouterr().out
