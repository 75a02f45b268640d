"""Training: preprocessing, search, candidates, blend, calibration, export.

The only part of Tabpilot that imports the training libraries (the `train` extra).
"""
