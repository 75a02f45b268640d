"""`make lambda-zip`'s build: under Lambda's 250 MB, no training library, and it works alone.

The zip is built (deploy/lambda/build.py, what `make lambda-zip` runs), and its unzipped tree is
then the only place a fresh interpreter finds packages (`-S`: no site-packages): it answers API
Gateway events through the Lambda handler (health, upload, prediction with a model trained
here, the ONNX download, a web page), and reports which modules it loaded. No training library
may be among them, nor in the zip at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_mixed_frame

pytestmark = pytest.mark.slow  # builds a 230 MB tree and trains a small model

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 250 * 1000 * 1000
TRAINING = ("sklearn", "flaml", "lightgbm", "xgboost", "catboost", "ray", "torch")

CHILD = textwrap.dedent(
    """
    import json, sys
    tree, root, data_dir, bundle, csv_path = sys.argv[1:6]
    # Only the zip's tree (and the tests' event builders): no site-packages at all.
    sys.path = [tree, root] + [p for p in sys.path if "-packages" not in p and p]
    from pathlib import Path

    from tabpilot.aws.lambda_handler import build_handler
    from tabpilot.context import build_context
    from tabpilot.records import JobRecord, JobStatus, ModelRecord, new_id
    from tabpilot.services.users import create_user
    from tabpilot.settings import load_settings
    from tabpilot.storage import keys
    from tests.aws.lambda_events import (
        API_HOST, body_of, http_event, json_event, json_of, upload_event,
    )

    settings = load_settings(
        data_dir=data_dir, auth="token", runner_uri="inline://", allowed_hosts=API_HOST
    )
    ctx = build_context(settings)
    user, token = create_user(ctx.metadata, name="ana")
    model_id = new_id("mdl")
    for path in Path(bundle).iterdir():
        ctx.artifacts.put_file(keys.model_file(model_id, path.name), path)
    handle = build_handler(settings)
    out = {}
    out["health"] = handle(http_event("GET", "/health"), None)["statusCode"]
    with open(csv_path, "rb") as fh:
        data = fh.read()
    uploaded = handle(upload_event("train.csv", data, token=token), None)
    out["upload"] = uploaded["statusCode"]
    dataset = json_of(uploaded)
    job = ctx.metadata.create_job(
        JobRecord(owner=user.id, dataset_id=dataset["id"], spec={"target": "label"},
                  status=JobStatus.SUCCEEDED)
    )
    card = json.loads((Path(bundle) / "model.json").read_text())
    ctx.metadata.create_model(
        ModelRecord(id=model_id, owner=user.id, job_id=job.id, card=card,
                    artifact_prefix=keys.model_prefix(model_id))
    )
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:4]]
    for row in rows:
        row.pop("label")
    predicted = handle(json_event("POST", f"/api/models/{model_id}/predict", {"rows": rows},
                                  token=token), None)
    out["predict"] = predicted["statusCode"]
    out["n_predictions"] = len(json_of(predicted).get("predictions", []))
    auth = {"authorization": f"Bearer {token}"}
    onnx = handle(http_event("GET", f"/api/models/{model_id}/files/model.onnx", headers=auth),
                  None)
    out["onnx"] = onnx["statusCode"]
    out["onnx_bytes"] = len(body_of(onnx))
    out["login_page"] = handle(http_event("GET", "/login"), None)["statusCode"]
    out["loaded"] = sorted({m.split(".")[0] for m in sys.modules})
    print("RESULT " + json.dumps(out))
    """
)


def test_the_api_zip_fits_lambda_has_no_training_library_and_serves_alone(
    tmp_path: Path,
) -> None:
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training

    built = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "lambda" / "build.py"),
            "--out",
            str(tmp_path / "api.zip"),
            "--tree",
            str(tmp_path / "tree"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tree = tmp_path / "tree"
    unzipped = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert unzipped < LIMIT_BYTES, f"{unzipped / 1e6:.1f} MB unzipped"
    with zipfile.ZipFile(tmp_path / "api.zip") as archive:
        names = archive.namelist()
        assert sum(i.file_size for i in archive.infolist()) == unzipped
    tops = {name.split("/")[0] for name in names}
    assert "tabpilot" in tops and "mangum" in tops
    assert not [t for t in TRAINING if t in tops]

    csv_path = tmp_path / "train.csv"
    make_mixed_frame(300, seed=5).to_csv(csv_path, index=False)
    bundle = tmp_path / "bundle"
    run_training(csv_path, TrainSpec(target="label", time_budget=5), out_dir=bundle, reports=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABPILOT_", "PYTHON"))}
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            CHILD,
            str(tree),
            str(ROOT),
            str(tmp_path / "data"),
            str(bundle),
            str(csv_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    loaded = out.pop("loaded")
    assert not [m for m in loaded if m in TRAINING]
    assert out.pop("onnx_bytes") > 1000
    assert out == {
        "health": 200,
        "upload": 201,
        "predict": 200,
        "n_predictions": 3,
        "onnx": 200,
        "login_page": 200,
    }
