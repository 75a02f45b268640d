"""/api/models/{id}/predict and predict.csv: JSON and CSV predictions, and the session cache.

Models come from the session's trained bundles (tests/api/model_support.py), installed into
each test's stores.
"""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabpilot.engine.data.io import read_csv
from tabpilot.errors import InvalidInput
from tabpilot.services import predictions as prediction_service
from tests.api.model_support import (
    Bundle,
    ctx_of,
    engine_predictions,
    features_of,
    install_model,
    json_rows,
    make_app_client,
)
from tests.api.support import csv_bytes

# -- JSON predictions ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_predict_rows_match_the_engine(
    client: TestClient, bundles: dict[str, Bundle], task: str
) -> None:
    bundle = bundles[task]
    model = install_model(ctx_of(client), bundle)
    frame = features_of(bundle).head(200)
    response = client.post(f"/api/models/{model.id}/predict", json={"rows": json_rows(frame)})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = engine_predictions(bundle, pd.DataFrame(json_rows(frame)))
    assert body["model_id"] == model.id
    assert body["inference_ms"] > 0
    assert "customer_id" in body["ignored_columns"]  # an identifier the model dropped
    if task == "binary":
        assert body["predictions"] == expected.labels
        got = pd.DataFrame(body["probabilities"])
        assert list(got.columns) == [str(c) for c in bundle.card["classes"]]
        np.testing.assert_allclose(got.to_numpy(), expected.probabilities.to_numpy(), atol=1e-6)
    else:
        assert body["probabilities"] is None
        np.testing.assert_allclose(body["predictions"], expected.labels, rtol=1e-6)


@pytest.mark.slow
def test_single_rows_agree_with_batches(client: TestClient, bundles: dict[str, Bundle]) -> None:
    """The single-row fast path gives what the pandas path gives, value kinds included."""
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    rows = json_rows(features_of(bundle).head(40))
    # Vary how values are sent: numbers as text, booleans as words, missing keys as null.
    rows[0]["x1"] = str(rows[0]["x1"])
    rows[1]["flag"] = "yes"
    rows[2]["flag"] = " FALSE "
    rows[3]["x2"] = None
    rows[4]["color"] = None
    rows[5]["flag"] = 1
    rows[6]["x2"] = int(rows[6]["x2"] or 0)
    rows[7]["signup"] = "2021-02-03T10:00:00"
    rows[8]["city"] = 7
    rows[9]["x1"] = 3
    batch = client.post(f"/api/models/{model.id}/predict", json={"rows": rows}).json()
    for i, row in enumerate(rows):
        one = client.post(f"/api/models/{model.id}/predict", json={"rows": [row]})
        assert one.status_code == 200, (i, one.text)
        body = one.json()
        assert body["predictions"] == [batch["predictions"][i]], i
        for label, p in body["probabilities"][0].items():
            assert math.isclose(p, batch["probabilities"][i][label], abs_tol=1e-6), i


@pytest.mark.slow
def test_columns_and_data_form(client: TestClient, bundles: dict[str, Bundle]) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    frame = features_of(bundle).head(30)
    rows = json_rows(frame)
    columns = list(frame.columns)
    data = [[row[c] for c in columns] for row in rows]
    by_rows = client.post(f"/api/models/{model.id}/predict", json={"rows": rows}).json()
    by_data = client.post(
        f"/api/models/{model.id}/predict", json={"columns": columns, "data": data}
    ).json()
    assert by_data["predictions"] == by_rows["predictions"]
    np.testing.assert_allclose(
        pd.DataFrame(by_data["probabilities"]).to_numpy(),
        pd.DataFrame(by_rows["probabilities"]).to_numpy(),
        atol=1e-7,
    )
    one = client.post(
        f"/api/models/{model.id}/predict", json={"columns": columns, "data": data[:1]}
    ).json()
    assert one["predictions"] == by_rows["predictions"][:1]


@pytest.mark.slow
def test_predict_errors_name_row_and_column(client: TestClient, bundles: dict[str, Bundle]) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    url = f"/api/models/{model.id}/predict"
    rows = json_rows(features_of(bundle).head(5))

    bad = [dict(r) for r in rows]
    bad[2]["x2"] = "lots"
    response = client.post(url, json={"rows": bad})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "x2" in error["message"] and "row 3" in error["message"]
    assert error["details"] == {"column": "x2", "rows": [3]}

    single = client.post(url, json={"rows": [bad[2]]}).json()["error"]
    assert "row 1" in single["message"] and "x2" in single["message"]

    missing = [{k: v for k, v in r.items() if k != "x1"} for r in rows]
    error = client.post(url, json={"rows": missing}).json()["error"]
    assert error["details"]["missing_columns"] == ["x1"]
    assert "x1" in error["message"]
    error = client.post(url, json={"rows": missing[:1]}).json()["error"]
    assert error["details"]["missing_columns"] == ["x1"]

    bad_date = [dict(r) for r in rows]
    bad_date[1]["signup"] = "not a date"
    error = client.post(url, json={"rows": bad_date}).json()["error"]
    assert "signup" in error["message"] and "row 2" in error["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "body",
    [
        {"rows": []},
        {},
        {"rows": [{"x1": 1}], "columns": ["x1"], "data": [[1]]},
        {"columns": ["x1"]},
        {"columns": ["x1", "x2"], "data": [[1, 2], [3]]},
        {"columns": ["x1", "x1"], "data": [[1, 2]]},
        {"columns": ["x1"], "data": []},
        {"rows": [1, 2]},
        {"rows": "x1=1"},
    ],
)
def test_malformed_predict_bodies_are_422(
    client: TestClient, bundles: dict[str, Bundle], body: dict
) -> None:
    model = install_model(ctx_of(client), bundles["binary"])
    response = client.post(f"/api/models/{model.id}/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


@pytest.mark.slow
def test_predict_body_that_is_not_json_is_422(
    client: TestClient, bundles: dict[str, Bundle]
) -> None:
    model = install_model(ctx_of(client), bundles["binary"])
    response = client.post(
        f"/api/models/{model.id}/predict",
        content=b"x1,x2\n1,2\n",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422


# -- CSV predictions -----------------------------------------------------------------------------


def read_predictions(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content), keep_default_na=False)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_predict_csv_matches_json_and_engine(
    client: TestClient,
    bundles: dict[str, Bundle],
    task: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small chunks, so the few thousand rows go through several of them.
    monkeypatch.setattr(prediction_service, "CSV_CHUNK_BYTES", 40_000)
    bundle = bundles[task]
    model = install_model(ctx_of(client), bundle)
    frame = features_of(bundle)
    data = csv_bytes(frame)
    assert len(data) > 3 * 40_000

    response = client.post(
        f"/api/models/{model.id}/predict.csv", content=data, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "customer_id" in response.headers["x-tabpilot-ignored-columns"]
    got = read_predictions(response.content)
    assert len(got) == len(frame)

    path = tmp_path / "rows.csv"
    path.write_bytes(data)
    engine = engine_predictions(bundle, read_csv(path).frame).to_frame()
    assert list(got.columns) == list(engine.columns)
    as_json = client.post(f"/api/models/{model.id}/predict", json={"rows": json_rows(frame)}).json()
    if task == "binary":
        assert got["prediction"].tolist() == engine["prediction"].tolist()
        assert got["prediction"].tolist() == as_json["predictions"]
        proba = got.drop(columns="prediction").to_numpy()
        np.testing.assert_allclose(proba, engine.drop(columns="prediction").to_numpy(), atol=1e-9)
        np.testing.assert_allclose(
            proba, pd.DataFrame(as_json["probabilities"]).to_numpy(), atol=1e-6
        )
    else:
        np.testing.assert_allclose(got["prediction"], engine["prediction"], rtol=1e-9)
        np.testing.assert_allclose(got["prediction"], as_json["predictions"], rtol=1e-6)


@pytest.mark.slow
def test_predict_csv_accepts_multipart_and_gzip(
    client: TestClient, bundles: dict[str, Bundle]
) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    data = csv_bytes(features_of(bundle).head(500))
    url = f"/api/models/{model.id}/predict.csv"
    plain = client.post(url, content=data, headers={"content-type": "text/csv"})
    multipart = client.post(url, files={"file": ("rows.csv", data, "text/csv")})
    zipped = client.post(
        url, content=gzip.compress(data), headers={"content-type": "application/gzip"}
    )
    assert plain.status_code == multipart.status_code == zipped.status_code == 200
    assert plain.content == multipart.content == zipped.content
    assert len(read_predictions(plain.content)) == 500


@pytest.mark.slow
def test_predict_csv_errors_are_clean_422s(client: TestClient, bundles: dict[str, Bundle]) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    url = f"/api/models/{model.id}/predict.csv"
    frame = features_of(bundle).head(50).copy()

    def post(content: bytes):
        return client.post(url, content=content, headers={"content-type": "text/csv"})

    bad = frame.astype({"x2": object})
    bad.loc[bad.index[6], "x2"] = "lots"
    error = post(csv_bytes(bad)).json()["error"]
    assert "x2" in error["message"] and "row 7" in error["message"]
    assert error["details"]["rows"] == [7]

    error = post(csv_bytes(frame.drop(columns=["x1"]))).json()["error"]
    assert error["details"]["missing_columns"] == ["x1"]

    for content in (b"", b"x1,x2,color\n", b"\n\n"):
        response = post(content)
        assert response.status_code == 422, content
        assert response.json()["error"]["message"]

    response = post(gzip.compress(csv_bytes(frame))[:300])
    assert response.status_code == 422
    assert "gzip" in response.json()["error"]["message"]

    response = post(b"PK\x03\x04 not really a zip")
    assert response.status_code == 422
    assert "Excel" in response.json()["error"]["message"]

    response = client.post(url, data={"name": "no file here"}, files={})
    assert response.status_code == 422
    assert "file" in response.json()["error"]["message"]


@pytest.mark.slow
def test_predict_csv_size_limit_is_413(tmp_path: Path, bundles: dict[str, Bundle]) -> None:
    with make_app_client(tmp_path, max_upload_mb=1) as client:
        model = install_model(ctx_of(client), bundles["binary"])
        data = csv_bytes(pd.concat([features_of(bundles["binary"])] * 6))
        assert len(data) > 1 << 20
        response = client.post(
            f"/api/models/{model.id}/predict.csv",
            content=data,
            headers={"content-type": "text/csv"},
        )
        assert response.status_code == 413
        assert "TABPILOT_MAX_UPLOAD_MB" in response.json()["error"]["message"]


@pytest.mark.slow
def test_bad_row_in_a_later_chunk_stops_the_stream_naming_the_file_row(
    client: TestClient, bundles: dict[str, Bundle]
) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    frame = features_of(bundle).astype({"x2": object})
    frame.loc[frame.index[2500], "x2"] = "lots"
    stream = prediction_service.start_csv_predictions(
        ctx_of(client), model=model, stream=io.BytesIO(csv_bytes(frame)), chunk_bytes=50_000
    )
    delivered = []
    with pytest.raises(InvalidInput) as caught:
        for piece in stream:
            delivered.append(piece)
    assert "row 2501" in caught.value.message
    assert caught.value.details["rows"] == [2501]
    predicted = caught.value.details["rows_predicted"]
    assert 0 < predicted < 2500
    # Every row before the bad chunk was delivered, and nothing after it.
    assert len(read_predictions(b"".join(delivered))) == predicted


@pytest.mark.slow
def test_csv_chunks_respect_quoted_line_breaks(
    client: TestClient, bundles: dict[str, Bundle]
) -> None:
    bundle = bundles["binary"]
    model = install_model(ctx_of(client), bundle)
    frame = features_of(bundle).head(400).copy()
    frame["note"] = [f'line one\nline "two" of {i}' for i in range(len(frame))]
    data = csv_bytes(frame)
    whole = prediction_service.start_csv_predictions(
        ctx_of(client), model=model, stream=io.BytesIO(data)
    )
    chunked = prediction_service.start_csv_predictions(
        ctx_of(client), model=model, stream=io.BytesIO(data), chunk_bytes=3000
    )
    by_chunks = read_predictions(b"".join(chunked))
    at_once = read_predictions(b"".join(whole))
    # Same rows, same labels; probabilities equal up to float32 rounding (onnxruntime's
    # kernels may sum in another order for another batch size).
    assert list(by_chunks["prediction"]) == list(at_once["prediction"])
    pd.testing.assert_frame_equal(by_chunks, at_once, check_exact=False, rtol=0, atol=1e-6)
    assert chunked.rows == whole.rows == 400


# -- the session cache ---------------------------------------------------------------------------


@pytest.mark.slow
def test_more_models_than_the_cache_holds_still_predict(
    client: TestClient, bundles: dict[str, Bundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = prediction_service.PredictorCache(max_models=3)
    monkeypatch.setattr(prediction_service, "_default_cache", cache)
    binary = [install_model(ctx_of(client), bundles["binary"]) for _ in range(3)]
    regression = [install_model(ctx_of(client), bundles["regression"]) for _ in range(2)]
    rows = json_rows(features_of(bundles["binary"]).head(5))
    expected = {
        "binary": engine_predictions(bundles["binary"], pd.DataFrame(rows)).labels,
        "regression": engine_predictions(bundles["regression"], pd.DataFrame(rows)).labels,
    }
    for _ in range(2):
        for task, models in (("binary", binary), ("regression", regression)):
            for model in models:
                body = client.post(f"/api/models/{model.id}/predict", json={"rows": rows}).json()
                if task == "binary":
                    assert body["predictions"] == expected[task], model.id
                else:
                    assert body["predictions"] == pytest.approx(expected[task]), model.id
                assert len(cache) <= 3
    assert len(cache) == 3
    assert cache.loads == 10  # every model loaded again in the second round (LRU, bound 3)
    assert [key[0] for key in cache.cached_keys()] == [m.id for m in binary[2:] + regression]


@pytest.mark.slow
def test_cache_reuses_sessions_and_reloads_a_changed_model(
    client: TestClient, bundles: dict[str, Bundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = prediction_service.PredictorCache(max_models=2)
    monkeypatch.setattr(prediction_service, "_default_cache", cache)
    ctx = ctx_of(client)
    model = install_model(ctx, bundles["binary"])
    first = cache.get(model, ctx.artifacts)
    assert cache.get(model, ctx.artifacts) is first
    assert cache.loads == 1

    # The model's files are replaced (same id, new card sha): the old session is dropped.
    regression = bundles["regression"]
    ctx.artifacts.put_file(f"{model.artifact_prefix}/model.onnx", regression.path / "model.onnx")
    changed = ctx.metadata.update_model(model.id, owner=None, card=regression.card)
    second = cache.get(changed, ctx.artifacts)
    assert second is not first
    assert cache.cached_keys() == [(model.id, prediction_service.model_onnx_sha256(changed))]


@pytest.mark.slow
def test_a_tampered_model_file_is_refused(client: TestClient, bundles: dict[str, Bundle]) -> None:
    ctx = ctx_of(client)
    model = install_model(ctx, bundles["binary"])
    ctx.artifacts.put_file(
        f"{model.artifact_prefix}/model.onnx", bundles["regression"].path / "model.onnx"
    )
    response = client.post(
        f"/api/models/{model.id}/predict",
        json={"rows": json_rows(features_of(bundles["binary"]).head(1))},
    )
    assert response.status_code == 409
    assert "sha256" in response.json()["error"]["message"]
