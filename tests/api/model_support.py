"""Trained model bundles for the /api/models tests, and how to install them into an app's stores.

Models are trained once per test session with the engine (5 s budgets on small synthetic data),
then installed into each test's stores directly: the bundle's files go into the artifact store
and a `ModelRecord` into the metadata store, as a finished job would leave them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.engine.serving.predict import OnnxPredictor
from tabpilot.records import JobStatus, ModelRecord, new_id
from tabpilot.services.auth import local_owner
from tabpilot.settings import load_settings
from tabpilot.storage import keys
from tests.conftest import make_mixed_frame
from tests.factories import add_dataset, add_job, add_model

BUNDLE_FILES = ("model.onnx", "model.pkl", "model.json", "eda.html", "report.html")


@dataclass
class Bundle:
    path: Path
    card: dict
    frame: pd.DataFrame  # rows the model has not seen, target included


def train_bundles(root: Path) -> dict[str, Bundle]:
    """A binary model (with its reports) and a regression model (without), trained under `root`."""
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training

    out: dict[str, Bundle] = {}
    for task, reports in (("binary", True), ("regression", False)):
        data = root / f"{task}.csv"
        make_mixed_frame(500, seed=1, task=task).to_csv(data, index=False)
        outcome = run_training(
            data,
            TrainSpec(target="label", time_budget=5, seed=0),
            out_dir=root / task,
            reports=reports,
        )
        fresh = make_mixed_frame(3000, seed=7, task=task)
        out[task] = Bundle(root / task, outcome.card.to_dict(), fresh)
    return out


def make_app_client(tmp_path: Path, **settings: object) -> TestClient:
    settings.setdefault("runner_uri", "inline://")
    app = create_app(settings=load_settings(data_dir=tmp_path / "data", **settings))
    return TestClient(app)


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined]


def install_model(ctx: AppContext, bundle: Bundle, *, owner: str | None = None) -> ModelRecord:
    """Put a trained bundle into the stores as a finished job would."""
    owner = owner or local_owner()
    dataset = add_dataset(ctx.metadata, owner=owner, filename="train.csv", n_rows=500, n_columns=9)
    job = add_job(ctx.metadata, dataset, status=JobStatus.SUCCEEDED)
    model_id = new_id("mdl")
    for name in BUNDLE_FILES:
        path = bundle.path / name
        if path.is_file():
            ctx.artifacts.put_file(keys.model_file(model_id, name), path)
    return add_model(ctx.metadata, job, id=model_id, card=bundle.card)


def features_of(bundle: Bundle) -> pd.DataFrame:
    return bundle.frame.drop(columns=["label"])


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client would send them: missing values as null."""
    return json.loads(frame.to_json(orient="records"))


def engine_predictions(bundle: Bundle, frame: pd.DataFrame):
    card = ModelCard.from_dict(bundle.card)
    predictor = OnnxPredictor((bundle.path / "model.onnx").read_bytes(), card)
    return predictor.predict(frame)
