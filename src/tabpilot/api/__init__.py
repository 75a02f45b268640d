"""The REST API: a FastAPI app (`create_app` in `app.py`) whose routes parse and map, calling
services/.

The API process never imports the training libraries (FLAML, scikit-learn, LightGBM,
XGBoost); training runs in workers and prediction uses onnxruntime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that route modules can import tabpilot.api.auth without building the app.
    if name == "create_app":
        from tabpilot.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
