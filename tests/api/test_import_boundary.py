"""The API process never imports the training libraries (DESIGN.md: they do not fit a Lambda).

A fresh interpreter imports the app, uploads a dataset, and predicts with a model trained
beforehand in this (test) process, through every prediction path; then it reports which heavy
modules it has loaded. None may be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import make_mixed_frame

HEAVY = ("flaml", "sklearn", "lightgbm", "xgboost", "feature_engine", "catboost", "ray", "torch")

CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import pandas as pd

    from fastapi.testclient import TestClient

    from tabpilot.api.app import create_app
    from tabpilot.records import JobRecord, JobStatus, ModelRecord, new_id
    from tabpilot.settings import load_settings
    from tabpilot.storage import keys

    data_dir, bundle, csv_path = (Path(p) for p in sys.argv[1:4])
    app = create_app(settings=load_settings(data_dir=data_dir, runner_uri="inline://"))
    out = {}
    with TestClient(app) as client:
        with open(csv_path, "rb") as fh:
            upload = client.post("/api/datasets", files={"file": ("train.csv", fh, "text/csv")})
        out["upload"] = upload.status_code
        dataset = upload.json()
        ctx = app.state.ctx
        record = ctx.metadata.find_dataset(dataset["id"], owner=None)
        job = ctx.metadata.create_job(
            JobRecord(
                owner=record.owner,
                dataset_id=record.id,
                spec={"target": "label"},
                status=JobStatus.SUCCEEDED,
            )
        )
        model_id = new_id("mdl")
        for path in bundle.iterdir():
            ctx.artifacts.put_file(keys.model_file(model_id, path.name), path)
        card = json.loads((bundle / "model.json").read_text())
        ctx.metadata.create_model(
            ModelRecord(
                id=model_id,
                owner=record.owner,
                job_id=job.id,
                card=card,
                artifact_prefix=keys.model_prefix(model_id),
            )
        )
        frame = pd.read_csv(csv_path).drop(columns=["label"])
        rows = json.loads(frame.head(3).to_json(orient="records"))
        out["predict_one"] = client.post(
            f"/api/models/{model_id}/predict", json={"rows": rows[:1]}
        ).status_code
        out["predict_many"] = client.post(
            f"/api/models/{model_id}/predict", json={"rows": rows}
        ).status_code
        out["predict_csv"] = client.post(
            f"/api/models/{model_id}/predict.csv",
            content=csv_path.read_bytes(),
            headers={"content-type": "text/csv"},
        ).status_code
        out["card"] = client.get(f"/api/models/{model_id}").status_code
        out["onnx"] = client.get(f"/api/models/{model_id}/files/model.onnx").status_code
    out["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_api_never_imports_training_libraries(tmp_path: Path) -> None:
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training

    csv_path = tmp_path / "train.csv"
    make_mixed_frame(300, seed=3).to_csv(csv_path, index=False)
    bundle = tmp_path / "bundle"
    run_training(csv_path, TrainSpec(target="label", time_budget=5), out_dir=bundle, reports=False)

    code = f"HEAVY = {HEAVY!r}\n{CHILD}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env["TABPILOT_ALLOWED_HOSTS"] = "testserver"  # the name TestClient calls the app by
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data"), str(bundle), str(csv_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out.pop("heavy") == []
    assert out == {
        "upload": 201,
        "predict_one": 200,
        "predict_many": 200,
        "predict_csv": 200,
        "card": 200,
        "onnx": 200,
    }
