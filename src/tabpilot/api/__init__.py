"""The REST API: a FastAPI app (`tabpilot.api.app.create_app`) whose routes parse and map,
calling services/.

The API process never imports the training libraries (FLAML, scikit-learn, LightGBM,
XGBoost); training runs in workers and prediction uses onnxruntime.

This package's `__init__` imports nothing, so a route module can import `tabpilot.api.auth`
without building the app (the app imports every route).
"""
