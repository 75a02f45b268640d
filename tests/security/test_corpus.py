"""A hostile-input corpus pushed through upload and predict on a real server (issue 11).

Markup and formula payloads in names and values, NUL bytes, odd encodings, broken quoting,
wide files, huge cells, junk bytes and hostile file names. Each input must get a clear answer:
it works (201/200), or a 4xx in the JSON envelope whose message says what is wrong. Never a
5xx, never a server path in an answer, and nothing left in the staging directory afterwards.
Bounded: about thirty small requests.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import SecServer, TrainedModel, wait_for_job
from tests.security.test_memory_disk import MIB, gzip_csv

MARKUP = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1)">'
FORMULA = '=HYPERLINK("http://evil.example","x")'


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


MIXED = "a,b\n1,caf\u00e9\n".encode() + "2,na\u00efve\n".encode("latin-1")
DEEP = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(200_000))
CMD = "=cmd|' /C calc'!A0"
CMD_FORMULAS = f"{quoted(CMD)},+SUM(1;2),label\n{quoted(CMD)},-1+1,@x\n+1,=2,a\n".encode()

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
    ("tab delimiter", "tab.csv", b"a\tb\tc\n1\t2\tx\n3\t4\ty\n"),
    ("pipe delimiter", "pipe.csv", b"a|b|c\n1|2|x\n3|4|y\n"),
    ("mixed UTF-8 and Latin-1", "mixed.csv", MIXED),
    (
        "invalid UTF-8 sequences",
        "badutf8.csv",
        b"a,b\n1,\xc0\xaf\n2,\xff\xfe\xfd\n3,\xed\xa0\x80\n",
    ),
    ("line breaks in quoted values", "breaks.csv", b'a,b\n1,"one\ntwo"\n2,"x\r\ny"\n'),
    ("CR line endings", "cr.csv", b"a,b\r1,2\r3,4\r"),
    ("UTF-16 without BOM", "utf16le.csv", "a,b\n1,2\n3,4\n".encode("utf-16-le")),
    ("UTF-32 with BOM", "utf32.csv", "a,b\n1,2\n3,4\n".encode("utf-32")),
    ("gzip inside gzip", "double.csv.gz", gzip.compress(gzip.compress(b"a,b\n1,2\n" * 1000))),
    ("a deep file", "deep.csv", DEEP),
    ("spreadsheet command formulas", "cmd.csv", CMD_FORMULAS),
]


UPLOADS_BY_CASE = {case: body for case, _, body in UPLOADS}


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
    ("tab delimiter", b"x\ty\n1\t2\n3\t4\n"),
    ("pipe delimiter", b"x|y\n1|2\n3|4\n"),
    ("line break in a quoted value", b'x,y,note\n1,2,"a\nb"\n'),
    ("invalid UTF-8 in an extra column", b"x,y,z\n1,2,\xc0\xaf\xff\n"),
    ("mixed UTF-8 and Latin-1", "x,y,z\n1,2,caf\u00e9\n".encode() + b"3,4,na\xefve\n"),
    ("command formulas in values", f"x,y\n{quoted(CMD)},1\n+1,@A1\n".encode()),
    ("UTF-32", "x,y\n1,2\n".encode("utf-32")),
    ("a gzip of NUL bytes", gzip.compress(b"\x00" * 1_000_000)),
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
    training: the job succeeds, its files are served sandboxed and its pages escape them,
    predict answers by those names, and predict.csv writes the `=cmd|` label as text."""
    names = [MARKUP, FORMULA, "日本", "a\nb", "label"]
    lines = [",".join(quoted(n) for n in names)]
    for i in range(80):
        value = [IMG, FORMULA, "\u00e9t\u00e9"][i % 3]
        lines.append(f"{i % 7},{quoted(value)},{i % 4},{i % 5},{quoted(MARKUP if i % 2 else CMD)}")
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
        for page in (f"/jobs/{job['id']}", f"/models/{model_id}/predict", "/jobs"):
            shown = client.get(page)
            assert shown.status_code == 200, (page, shown.text[:300])
            assert MARKUP not in shown.text and IMG not in shown.text, page
        row = {MARKUP: 3, FORMULA: IMG, "日本": 1, "a\nb": 2}
        answer = client.post(f"/api/models/{model_id}/predict", json={"rows": [row]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0] in (MARKUP, CMD)  # JSON keeps labels as they are
        table = client.post(
            f"/api/models/{model_id}/predict.csv",
            files={"file": ("rows.csv", "\n".join(lines[:41]).encode() + b"\n", "text/csv")},
        )
        assert table.status_code == 200, table.text
    written = [row[0] for row in csv.reader(io.StringIO(table.text))][1:]
    assert len(written) == 40 and set(written) <= {MARKUP, "'" + CMD}, set(written)
    assert "'" + CMD in written  # the formula label, neutralised for spreadsheets
    assert staged_files(sec_server) == []


# -- what "works" means, encodings, bombs, markup where shown, memory -------------------------

READABLE: list[tuple[str, bytes, str, int, int, str | None]] = [
    # (case, body, delimiter found, rows, columns, a value the preview must show)
    ("tab delimiter", b"a\tb\tc\n1\t2\tx\n3\t4\ty\n", "\t", 2, 3, "x"),
    ("pipe delimiter", b"a|b|c\n1|2|x\n3|4|y\n", "|", 2, 3, "y"),
    ("semicolon, BOM and CRLF", "\ufeffa;b\r\n1;2\r\n3;4\r\n".encode(), ";", 2, 2, None),
    ("line breaks in quoted values", b'a,b\n1,"one\ntwo"\n2,"x\r\ny"\n', ",", 2, 2, "one\ntwo"),
    ("CR line endings", b"a,b\r1,2\r3,4\r", ",", 2, 2, None),
    ("mixed UTF-8 and Latin-1", MIXED, ",", 2, 2, "na\u00efve"),
    ("invalid UTF-8 sequences", b"a,b\n1,\xc0\xaf\n2,\xff\xfe\n3,x\n", ",", 3, 2, "x"),
    ("a deep file", DEEP, ",", 200_000, 2, None),
]


@pytest.mark.parametrize(
    ("case", "body", "delimiter", "rows", "columns", "value"),
    READABLE,
    ids=[r[0] for r in READABLE],
)
def test_readable_variants_are_read_as_meant(
    sec_server: SecServer,
    case: str,
    body: bytes,
    delimiter: str,
    rows: int,
    columns: int,
    value: str | None,
) -> None:
    """Inputs that are odd but unambiguous work, and are read as they were meant."""
    with sec_server.client(timeout=120) as client:
        answer = client.post("/api/datasets", files={"file": ("odd.csv", body, "text/csv")})
        assert answer.status_code == 201, (case, answer.text)
        dataset = client.get(f"/api/datasets/{answer.json()['id']}").json()
    assert dataset["file"]["delimiter"] == delimiter, case
    assert (dataset["n_rows"], dataset["n_columns"]) == (rows, columns), case
    if value is not None:
        shown = [str(cell) for row in dataset["preview"]["rows"] for cell in row]
        assert value in shown, (case, shown)
    assert staged_files(sec_server) == [], case


ENCODINGS: list[tuple[str, bytes, str]] = [
    ("UTF-16 with BOM", "a,b\n1,2\n".encode("utf-16"), "UTF-16"),
    ("UTF-16 without BOM, little-endian", "a,b\n1,2\n".encode("utf-16-le"), "UTF-16"),
    ("UTF-16 without BOM, big-endian", "a,b\n1,2\n".encode("utf-16-be"), "UTF-16"),
    ("UTF-32 with BOM", "a,b\n1,2\n".encode("utf-32"), "UTF-32"),
]


@pytest.mark.parametrize(("case", "body", "named"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_unsupported_encodings_are_named_with_the_fix(
    sec_server: SecServer, case: str, body: bytes, named: str
) -> None:
    """UTF-16 and UTF-32 files are refused by name, with what to save them as (UTF-32 was
    called UTF-16, and UTF-16 without a byte-order mark "binary data with NUL bytes")."""
    with sec_server.client() as client:
        answer = client.post("/api/datasets", files={"file": ("enc.csv", body, "text/csv")})
    assert answer.status_code == 422, (case, answer.text)
    message = answer.json()["error"]["message"]
    assert named in message and "UTF-8" in message and "NUL" not in message, (case, message)


@pytest.mark.slow
def test_gzip_bombs_get_a_clear_answer_in_a_child(sec_server: SecServer) -> None:
    """Small gzip files that inflate past 16 MiB (so they are read in a child process): NUL
    bytes, and one endless line whose only cell is far past the cell limit. Each gets a 422
    saying what is wrong; the server's own memory peak hardly moves; nothing stays staged."""
    bombs = [
        ("NUL bytes", gzip_csv(b"", b"\x00" * 64, 24 * MIB), "NUL bytes"),
        ("one endless line", gzip_csv(b"a,b\n1,", b"x" * 64, 17 * MIB), "TABPILOT_MAX_CELL"),
    ]
    for case, body, says in bombs:
        assert len(body) < 64 * 1024, case
        sec_server.reset_peak_rss()
        peak = sec_server.peak_rss_kib()
        with sec_server.client(timeout=240) as client:
            answer = client.post(
                "/api/datasets", files={"file": ("bomb.csv.gz", body, "application/gzip")}
            )
        check_answer(sec_server, case, answer, 201)
        assert answer.status_code == 422, (case, answer.text)
        assert says in answer.json()["error"]["message"], (case, answer.text)
        grown_mib = (sec_server.peak_rss_kib() - peak) / 1024
        assert grown_mib < 40, (case, grown_mib)
        assert staged_files(sec_server) == [], case


def test_markup_in_names_and_values_is_escaped_where_shown(sec_server: SecServer) -> None:
    """A dataset named with markup, with markup column names and values: the web pages that
    show it (home, the dataset's page) and its EDA report carry the markup escaped only."""
    body = f"{quoted(MARKUP)},{quoted(IMG)},label\n{quoted(MARKUP)},1,a\n{quoted(IMG)},2,b\n"
    with sec_server.client(timeout=120) as client:
        uploaded = client.post(
            "/api/datasets",
            params={"name": f"{MARKUP}{CMD}"},
            files={"file": ("markup.csv", body.encode(), "text/csv")},
        )
        assert uploaded.status_code == 201, uploaded.text
        dataset_id = uploaded.json()["id"]
        pages = {
            url: client.get(url)
            for url in ("/", f"/datasets/{dataset_id}", f"/api/datasets/{dataset_id}/eda.html")
        }
    for url, page in pages.items():
        assert page.status_code == 200, (url, page.text[:300])
        assert MARKUP not in page.text and IMG not in page.text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/datasets/{dataset_id}"].text


WARM_ROUNDS, MEASURED_ROUNDS, GROWTH_BOUND_MIB = 4, 16, 110


@pytest.mark.slow
def test_server_memory_returns_after_heavy_hostile_inputs(
    sec_server: SecServer, sec_model: TrainedModel
) -> None:
    """The heaviest inputs of this corpus, round after round: memory a request keeps must show.

    The server's memory grows for the first rounds (caches, an allocator arena for each worker
    thread that handles one) and then wanders without a trend. Measured on the 2-core machine
    (36 runs of 4 to 32 rounds after four warm ones): resident memory -2 to +65 MiB, peak 0 to
    +69 MiB, about the same at 4 rounds as at 32. Memory that grows with every round does not
    wander: a predict request that kept 4 MiB (injected once to check this test; two such
    requests a round) grew the resident memory and the peak by 140 to 174 MiB over 16 rounds.
    The bound, 110 MiB over 16 rounds, lies between the two; a smaller bound over fewer rounds
    failed on noise alone (a CI run measured +66 MiB against a former 64 over 4 rounds)."""
    predict_url = f"/api/models/{sec_model.model_id}/predict.csv"
    deep_rows = b"x,y\n" + b"".join(b"%d,%d\n" % (i % 5, i % 3) for i in range(20_000))
    uploads = [
        ("deep.csv", DEEP, 201),
        ("line.csv", b"a,b\n1," + b"y" * (4 * MIB) + b"\n", 422),
        ("cell.csv", b"a,b\n1," + b"x" * 150_000 + b"\n2,y\n", 422),
        ("wide.csv", UPLOADS_BY_CASE["wider than the column limit"], 422),
    ]
    predictions = [(deep_rows, 200, 20_001), (b"x,y\n1," + b"9" * 200_000 + b"\n", None, 0)]

    def one_round(client: httpx.Client) -> None:
        for name, body, status in uploads:
            answer = client.post("/api/datasets", files={"file": (name, body, "text/csv")})
            assert answer.status_code == status, (name, answer.text[:300])
            if status == 201:
                assert client.delete(f"/api/datasets/{answer.json()['id']}").status_code == 200
        for body, status, lines in predictions:
            answer = client.post(predict_url, files={"file": ("rows.csv", body, "text/csv")})
            check_answer(sec_server, "predict", answer, 200)
            if status is not None:
                assert answer.status_code == status and answer.text.count("\n") == lines

    with sec_server.client(timeout=120) as client:
        sec_server.reset_peak_rss()
        for _ in range(WARM_ROUNDS):
            one_round(client)
        rss, peak = sec_server.rss_kib(), sec_server.peak_rss_kib()
        sec_server.reset_peak_rss()
        for _ in range(MEASURED_ROUNDS):
            one_round(client)
    grown_mib = (sec_server.rss_kib() - rss) / 1024
    peak_grown_mib = (sec_server.peak_rss_kib() - peak) / 1024
    assert grown_mib < GROWTH_BOUND_MIB, (grown_mib, rss // 1024)
    assert peak_grown_mib < GROWTH_BOUND_MIB, (peak_grown_mib, peak // 1024)
    assert staged_files(sec_server) == []


@pytest.mark.slow
def test_predict_csv_refuses_one_endless_line_without_the_memory(
    sec_server: SecServer, sec_model: TrainedModel
) -> None:
    """Found by this corpus: a 24 KB .csv.gz inflating to one 24 MiB line (`x,y` then
    `1,777...`) was parsed whole in the server and predicted (200; +200 MB server peak; a 60
    MiB line: 26 s and +300 MB). A row past 8 MiB is now a 422 saying what to check, read no
    further, with the server's peak under +40 MiB and nothing staged."""
    bomb = gzip_csv(b"x,y\n1,", b"7" * 64, 24 * MIB)
    assert len(bomb) < 64 * 1024
    sec_server.reset_peak_rss()
    peak = sec_server.peak_rss_kib()
    with sec_server.client(timeout=120) as client:
        answer = client.post(
            f"/api/models/{sec_model.model_id}/predict.csv",
            files={"file": ("rows.csv.gz", bomb, "application/gzip")},
        )
    check_answer(sec_server, "endless line", answer, 200)
    assert answer.status_code == 422, answer.text[:300]
    message = answer.json()["error"]["message"]
    assert "longer than 8 MB" in message and "too long" in message, message
    grown_mib = (sec_server.peak_rss_kib() - peak) / 1024
    assert grown_mib < 40, grown_mib
    assert staged_files(sec_server) == []


@pytest.mark.slow
def test_an_odd_but_readable_file_trains_and_predicts(sec_server: SecServer) -> None:
    """Latin-1, tab-delimited, CRLF, with quoted line breaks and accented labels: the worker
    reads the stored file as the upload was read, the job succeeds, and rows to predict in the
    same format are answered row for row."""
    labels, colours = ("oui", "n\u00e9"), ("rouge", "vert", "bleu")
    lines = ["size\tcolour\tnote\tlabel"]
    for i in range(80):
        note = '"two\r\nlines"' if i % 4 == 0 else "caf\u00e9"
        lines.append(f"{i % 9}\t{colours[i % 3]}\t{note}\t{labels[i % 2]}")
    body = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    with sec_server.client(timeout=60) as client:
        uploaded = client.post("/api/datasets", files={"file": ("odd.csv", body, "text/csv")})
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["file"]["delimiter"] == "\t"
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
        rows = ("\r\n".join(lines[:11]) + "\r\n").encode("latin-1")
        table = client.post(
            f"/api/models/{job['model_id']}/predict.csv",
            files={"file": ("rows.csv", rows, "text/csv")},
        )
    assert table.status_code == 200, table.text
    written = [row[0] for row in csv.reader(io.StringIO(table.text))]
    assert written[0] == "prediction" and len(written) == 11, written
    assert set(written[1:]) <= set(labels), written
    assert staged_files(sec_server) == []
