"""Pure ML: DataFrames and paths in, objects out. No env, no database, no HTTP.

Three parts, each a sub-package:

- `data`: reading and understanding data (CSV input, column profiles, problem type, features);
  numpy, pandas and pyarrow only.
- `training`: preprocessing, the search (`training/search.py`, the only FLAML import),
  candidates, the blend, export (the `train` extra).
- `serving`: predictions from model.onnx with onnxruntime only.

Beside them, `choices` and `budget` (plain data and arithmetic that the API validates with) and
`reports` (HTML pages rendered from results).
"""
