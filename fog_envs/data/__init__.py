"""Play datasets: the HDF5 format, collection on the reference systems, and window sampling for training.

* :mod:`fog_envs.data.format` — the file format, atomic writing, validation (:class:`DatasetError`),
  loading and :func:`~fog_envs.data.format.dataset_fingerprint`.
* :mod:`fog_envs.data.collect` — parallel, resumable collection (``fog-collect``, :mod:`fog_envs.data.cli`).
* :mod:`fog_envs.data.rollout` — one play episode in the dataset's row convention.
* :mod:`fog_envs.data.motion` — did the manipulated object move (per env id).
* :mod:`fog_envs.data.reader` — :class:`~fog_envs.data.reader.WindowSampler` for training.
"""
