"""Training: preprocessing, search, candidates, blend, calibration, export.

The only part of Tabpilot that imports the training libraries (the `train` extra), and of
its modules only `search.py` imports FLAML. `train.py` runs the steps of a run in order;
each step is a module with one job: `targets` (the target encoded), `holdout` (the held-out
split and the fitted preprocessor), `search` (FLAML), `estimators` (model builders),
`candidates` (what is compared), `scoring` (fitting and scoring them), `blend_pool` and
`blend` (the weighted blend), `calibrate` (temperature scaling), `selection` (folds and the
winner), `outputs` (model outputs in one shape), `leaderboard`, `explain`,
`evaluation` (the held-out curves and error charts the card keeps), and `clock` (the one
budget and how the steps share it). `export` writes the bundle; `run` goes from a file to a
bundle.
"""
