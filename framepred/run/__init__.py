"""The run folder: where a run writes what, and how a later start reads it.

- `folder`: the layout (`RunPaths`) and atomic writes;
- `resume`: what a start in an existing folder means (resume, continue, complete,
  start afresh), the completion marker, and stopping on SIGTERM / Ctrl-C;
- `trained`: a trained run read back, for `evaluate` and `predict`: the checkpoint,
  the config it was trained with, and the checks that inputs fit it.
"""
