"""Pure ML: DataFrames and paths in, objects out. No env, no database, no HTTP.

Only `train.py` imports FLAML; `predict.py` needs nothing but numpy, pandas and onnxruntime.
"""
