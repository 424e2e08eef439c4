"""A run's life, in one place: its folder, its data, its set-up, training and its results.

Reading a run (layer below evaluate, so that every verb can reopen one):
- `splits.py`: `run_splits` — the run's data exactly as it was trained, for evaluate, features, explain, serve,
  export and bench; `load_splits` is what training itself reads.
- `folder.py`: the run folder — new, resumed or replacing another (`--overwrite`), and what happens to it when a
  run fails or is interrupted.

Making a run (above evaluate):
- `setup.py`: data → model → callbacks → trainer → loaders, the thread and time-budget probes, in one place.
- `finish.py`: last good weights, the final evaluation, metrics.json, the model file and the curves.
- `train.py`: `train_run` (check → folder → setup → resume → fit → finish) and `resume_config`.
- `lr_find.py`: the learning-rate range test on the same set-up.

This package file imports nothing, so that importing `cnnlab.run.splits` does not pull in training.
"""
