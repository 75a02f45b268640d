"""A hostile-input corpus pushed through upload and predict on a real server (issue 11).

Markup and formula payloads in names and values, NUL bytes, odd encodings, broken quoting,
wide files, huge cells, junk bytes and hostile file names. Each input must get a clear answer:
it works (201/200), or a 4xx in the JSON envelope whose message says what is wrong. Never a
5xx, never a server path in an answer, and nothing left in the staging directory afterwards.
Bounded: about thirty small requests.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import SecServer, TrainedModel, wait_for_job

MARKUP = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1)">'
FORMULA = '=HYPERLINK("http://evil.example","x")'


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


UPLOADS: list[tuple[str, str, bytes]] = [
    # (case, file name, body)
    (
        "markup in names and values",
        "markup.csv",
        f"{quoted(MARKUP)},{quoted(IMG)},label\n{quoted(MARKUP)},1,a\n{quoted(IMG)},2,b\n".encode(),
    ),
    (
        "formulas in names and values",
        "formulas.csv",
        f"{quoted(FORMULA)},@SUM(1),label\n{quoted(FORMULA)},+1+1,-x\n-2+3,@A1,=1\n".encode(),
    ),
    ("NUL bytes in cells", "nul.csv", b"a,b\n1,x\x00y\n2,\x00\n3,z\n"),
    ("NUL byte in a name", "nulname.csv", b"a\x00b,c\n1,2\n3,4\n"),
    ("UTF-16 with BOM", "utf16.csv", "a,b\n1,caf\u00e9\n2,x\n".encode("utf-16")),
    ("Latin-1 bytes", "latin1.csv", "a,b\n1,caf\u00e9\n2,na\u00efve\n".encode("latin-1")),
    ("UTF-8 BOM and CRLF", "bom.csv", "\ufeffa;b\r\n1;2\r\n3;4\r\n".encode()),
    ("non-Latin names", "cjk.csv", "日本,значение,label\n1,2,a\n3,4,b\n".encode()),
    ("line breaks in names", "newline.csv", b'"a\nb","c\rd",label\n1,2,x\n3,4,y\n'),
    ("unbalanced quote", "quote.csv", b'a,b\n"1,2\n3,4\n'),
    ("ragged rows", "ragged.csv", b"a,b\n1,2,3,4\n5\n6,7\n"),
    ("duplicate names", "dup.csv", b"a,a,a\n1,2,3\n4,5,6\n"),
    ("empty file", "empty.csv", b""),
    ("header only", "header.csv", b"a,b,c\n"),
    ("junk bytes", "junk.csv", bytes(range(256)) * 40),
    (
        "wider than the column limit",
        "wide.csv",
        (",".join(f"c{i}" for i in range(1500)) + "\n" + ",".join("1" * 1500) + "\n").encode(),
    ),
    ("a cell past the cell limit", "cell.csv", b"a,b\n1," + b"x" * 150_000 + b"\n2,y\n"),
    ("path traversal in the name", "../../../etc/passwd.csv", b"a,b\n1,2\n3,4\n"),
    ("markup and newline in the name", f"{MARKUP}\n.csv", b"a,b\n1,2\n3,4\n"),
    ("not gzip though named so", "fake.csv.gz", b"a,b\n1,2\n"),
]


def staged_files(server: SecServer) -> list[Path]:
    uploads = server.data_dir / "uploads"
    return sorted(p for p in uploads.rglob("*") if p.is_file()) if uploads.is_dir() else []


def check_answer(server: SecServer, case: str, answer: httpx.Response, ok: int) -> None:
    assert answer.status_code == ok or 400 <= answer.status_code < 500, (case, answer.text)
    assert str(server.data_dir) not in answer.text, case
    assert "Traceback" not in answer.text, case
    if answer.status_code != ok:
        error = answer.json()["error"]
        assert error["code"] and len(error["message"]) > 20, (case, error)


@pytest.mark.parametrize(("case", "name", "body"), UPLOADS, ids=[u[0] for u in UPLOADS])
def test_hostile_upload_gets_a_clear_answer(
    sec_server: SecServer, case: str, name: str, body: bytes
) -> None:
    with sec_server.client(timeout=120) as client:
        answer = client.post("/api/datasets", files={"file": (name, body, "text/csv")})
        check_answer(sec_server, case, answer, 201)
        if answer.status_code == 201:
            dataset = answer.json()
            assert "/" not in dataset["filename"] and "\n" not in dataset["filename"]
            shown = client.get(f"/api/datasets/{dataset['id']}")
            assert shown.status_code == 200, shown.text
            listed = client.get("/api/datasets")
            assert listed.status_code == 200
    assert staged_files(sec_server) == [], case


PREDICT_CSVS: list[tuple[str, bytes]] = [
    ("markup and formulas in values", f"x,y\n{quoted(MARKUP)},{quoted(FORMULA)}\n1,2\n".encode()),
    (
        "extra columns with hostile names",
        f"x,y,{quoted(MARKUP)},{quoted(FORMULA)},日本\n1,2,a,b,c\n".encode(),
    ),
    ("line break in an extra name", b'x,y,"a\nb"\n1,2,3\n'),
    ("NUL bytes", b"x,y\n1,\x00\n\x00,2\n"),
    ("missing values", b"x,y\n,\n1,\n"),
    ("a feature missing", b"x\n1\n2\n"),
    ("UTF-16", "x,y\n1,2\n".encode("utf-16")),
    ("empty", b""),
    ("junk", bytes(range(256)) * 10),
    ("huge cell", b"x,y\n1," + b"9" * 200_000 + b"\n"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "body"), PREDICT_CSVS, ids=[p[0] for p in PREDICT_CSVS])
def test_hostile_predict_csv_gets_a_clear_answer(
    sec_server: SecServer, sec_model: TrainedModel, case: str, body: bytes
) -> None:
    with sec_server.client(timeout=60) as client:
        answer = client.post(
            f"/api/models/{sec_model.model_id}/predict.csv",
            files={"file": ("rows.csv", body, "text/csv")},
        )
    check_answer(sec_server, case, answer, 200)
    if answer.status_code == 200:
        assert answer.text.lstrip('"').startswith("prediction"), (case, answer.text[:200])
    assert staged_files(sec_server) == [], case


@pytest.mark.slow
def test_hostile_predict_json_gets_a_clear_answer(
    sec_server: SecServer, sec_model: TrainedModel
) -> None:
    url = f"/api/models/{sec_model.model_id}/predict"
    bodies: list[tuple[str, object]] = [
        ("hostile keys", {"rows": [{"x": 1, "y": 2, MARKUP: FORMULA, "日本": "\x00"}]}),
        ("markup values", {"rows": [{"x": MARKUP, "y": FORMULA}]}),
        ("nested values", {"rows": [{"x": {"a": [1, 2]}, "y": [None]}]}),
        ("not rows", {"rows": "x"}),
        ("no rows", {"rows": []}),
        ("huge numbers", {"rows": [{"x": 1e308, "y": -1e308}]}),
    ]
    with sec_server.client(timeout=60) as client:
        for case, body in bodies:
            answer = client.post(url, json=body)
            check_answer(sec_server, case, answer, 200)
        raw = client.post(
            url,
            content=b'{"rows": [{"x": NaN, "y": Infinity}]}',
            headers={"Content-Type": "application/json"},
        )
        check_answer(sec_server, "NaN and Infinity", raw, 200)
        broken = client.post(
            url, content=b'{"rows": [', headers={"Content-Type": "application/json"}
        )
        check_answer(sec_server, "broken JSON", broken, 200)
        assert broken.status_code == 422
        assert json.loads(broken.text)["error"]["code"]


@pytest.mark.slow
def test_hostile_names_and_values_train_and_predict(sec_server: SecServer) -> None:
    """Markup, formula, non-Latin and multi-line column names and values all the way through
    training: the job succeeds, its files are served sandboxed, predict answers by those names."""
    names = [MARKUP, FORMULA, "日本", "a\nb", "label"]
    lines = [",".join(quoted(n) for n in names)]
    for i in range(80):
        value = [IMG, FORMULA, "\u00e9t\u00e9"][i % 3]
        lines.append(f"{i % 7},{quoted(value)},{i % 4},{i % 5},{quoted(MARKUP if i % 2 else 'ok')}")
    body = ("\n".join(lines) + "\n").encode()
    with sec_server.client(timeout=60) as client:
        uploaded = client.post("/api/datasets", files={"file": ("hostile.csv", body, "text/csv")})
        assert uploaded.status_code == 201, uploaded.text
        created = client.post(
            "/api/jobs",
            json={
                "dataset_id": uploaded.json()["id"],
                "target": "label",
                "time_budget": 5,
                "estimators": ["rf"],
            },
        )
        assert created.status_code == 202, created.text
        job = wait_for_job(client, created.json()["id"])
        assert job["status"] == "succeeded", job
        model_id = job["model_id"]
        report = client.get(f"/api/models/{model_id}/files/report.html")
        assert report.status_code == 200
        assert report.headers["content-security-policy"] == "sandbox allow-scripts"
        assert MARKUP not in report.text  # escaped
        row = {MARKUP: 3, FORMULA: IMG, "日本": 1, "a\nb": 2}
        answer = client.post(f"/api/models/{model_id}/predict", json={"rows": [row]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0] in (MARKUP, "ok")
        table = client.post(
            f"/api/models/{model_id}/predict.csv",
            files={"file": ("rows.csv", "\n".join(lines[:4]).encode() + b"\n", "text/csv")},
        )
        assert table.status_code == 200, table.text
    assert staged_files(sec_server) == []
