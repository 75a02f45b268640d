"""Tests for tabpilot.engine.data.io (encodings, delimiters, gzip, quoting, dtypes, errors) and
engine.data.csvbytes (sniffing, cutting a stream into chunks of records)."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data import csvbytes
from tabpilot.engine.data.csvbytes import (
    GZIP_MAGIC,
    binary_signature,
    decompressed,
    is_gzip,
    split_records,
)
from tabpilot.engine.data.io import CsvTable, read_csv, read_csv_bytes
from tabpilot.errors import DataFileError, InvalidInput

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def write(tmp_path: Path, data: bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_error(path: Path, **kwargs: object) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        read_csv(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("cp1252", "cp1252"), ("utf-8-sig", "utf-8-sig")],
)
def test_encodings_are_detected_and_decoded(tmp_path: Path, encoding: str, expected: str) -> None:
    text = "city,price\nCafé,3€\nNaïve,4€\n"
    table = read_csv(write(tmp_path, text.encode(encoding)))
    assert table.encoding == expected
    assert list(table.frame.columns) == ["city", "price"]
    assert table.frame["city"].tolist() == ["Café", "Naïve"]
    assert table.frame["price"].tolist() == ["3€", "4€"]


def test_latin1_when_cp1252_cannot_decode(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252, so only latin-1 can decode this file.
    data = "name,code\nété,a\x81b\n".encode("latin-1")
    table = read_csv(write(tmp_path, data))
    assert table.encoding == "latin-1"
    assert table.frame["name"].tolist() == ["été"]
    assert table.frame["code"].tolist() == ["a\x81b"]


def test_bom_never_ends_up_in_the_first_column_name(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"\xef\xbb\xbfid;value\n1;2\n"))
    assert table.encoding == "utf-8-sig"
    assert list(table.frame.columns) == ["id", "value"]
    assert table.frame["id"].tolist() == [1]


def test_non_utf8_after_the_sample_falls_back_to_cp1252(tmp_path: Path) -> None:
    # The first few MB are ASCII (valid UTF-8); the cp1252 text comes later.
    data = b"name,n\n" + b"abc,1\n" * 1_000_000 + "é€,2\n".encode("cp1252")
    table = read_csv(write(tmp_path, data))
    assert table.encoding == "cp1252"
    assert len(table.frame) == 1_000_001
    assert table.frame["name"].iloc[-1] == "é€"
    assert table.frame["n"].dtype == np.int64


def test_non_cp1252_after_the_sample_falls_back_to_latin1(tmp_path: Path) -> None:
    data = b"name,n\n" + b"abc,1\n" * 1_000_000 + "é\x90,2\n".encode("latin-1")
    table = read_csv(write(tmp_path, data))
    assert table.encoding == "latin-1"
    assert table.frame["name"].iloc[-1] == "é\x90"


# --- delimiters, quoting, line endings ----------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [["a", "b", "c"], ["1", "x", "2.5"], ["2", "y", "3.5"], ["3", "z", ""]]
    data = "".join(delimiter.join(row) + "\n" for row in rows).encode()
    table = read_csv(write(tmp_path, data))
    assert table.delimiter == delimiter
    assert list(table.frame.columns) == ["a", "b", "c"]
    assert table.frame.shape == (3, 3)
    assert table.frame["a"].tolist() == [1, 2, 3]


def test_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"name;price\nfoo;1,5\nbar;2,25\n"))
    assert table.delimiter == ";"
    assert table.frame["price"].tolist() == ["1,5", "2,25"]


def test_quoted_fields_with_newlines_and_delimiters(tmp_path: Path) -> None:
    data = (
        b'id,text,n\n1,"hello, world",2\n2,"line one\nline two, with comma",3\n3,"say ""hi""",4\n'
    )
    table = read_csv(write(tmp_path, data))
    assert table.frame["text"].tolist() == [
        "hello, world",
        "line one\nline two, with comma",
        'say "hi"',
    ]
    assert table.frame["n"].tolist() == [2, 3, 4]


def test_quoted_newline_far_beyond_the_sample(tmp_path: Path) -> None:
    data = b"name,n\n" + b"abc,1\n" * 1_000_000 + b'"x\ny",2\n'
    table = read_csv(write(tmp_path, data))
    assert len(table.frame) == 1_000_001
    assert table.frame["name"].iloc[-1] == "x\ny"


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_windows_and_old_mac_line_endings(tmp_path: Path, newline: bytes) -> None:
    data = newline.join([b"a,b", b"1,x", b"2,y", b""])
    table = read_csv(write(tmp_path, data))
    assert table.frame["a"].tolist() == [1, 2]
    assert table.frame["b"].tolist() == ["x", "y"]


def test_column_names_are_stripped(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b" a ,\tb\t, c\n1,2,3\n"))
    assert list(table.frame.columns) == ["a", "b", "c"]


def test_blank_lines_are_not_rows(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"a,b\n1,2\n\n3,4\n\n"))
    assert table.frame["a"].tolist() == [1, 3]


# --- gzip ---------------------------------------------------------------------------------------


def test_gzip_file(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n1,x\n2,y\n")
    path = write(tmp_path, data, "data.csv.gz")
    table = read_csv(path)
    assert table.compressed
    assert table.n_bytes == len(data)
    assert table.frame["b"].tolist() == ["x", "y"]


def test_gzip_is_detected_by_magic_bytes_not_extension(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, gzip.compress(b"a;b\n1;2\n"), "data.csv"))
    assert table.compressed
    assert table.delimiter == ";"


def test_gzip_with_cp1252_and_quoted_newlines(tmp_path: Path) -> None:
    data = gzip.compress('a,b\n"x\ny",é\n'.encode("cp1252"))
    table = read_csv(write(tmp_path, data, "data.csv.gz"))
    assert table.encoding == "cp1252"
    assert table.frame.iloc[0].tolist() == ["x\ny", "é"]


def test_plain_csv_with_gz_extension_is_read_as_plain(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"a,b\n1,2\n", "data.csv.gz"))
    assert not table.compressed


def test_damaged_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 10_000)[:-30]
    error = read_error(write(tmp_path, data, "bad.csv.gz"))
    assert "bad.csv.gz" in str(error)
    assert "not a valid gzip file" in str(error)


# --- dtypes -------------------------------------------------------------------------------------


def test_dtypes(tmp_path: Path) -> None:
    data = (
        b"int,int_missing,real,flag,flag_missing,text,empty,day\n"
        b"1,10,1.5,true,True,a,,2024-01-31\n"
        b"2,,2.5,false,,,,2024-02-01\n"
        b"3,30,,TRUE,false, ,,2024-02-02\n"
    )
    frame = read_csv(write(tmp_path, data)).frame
    assert frame["int"].dtype == np.int64
    assert frame["int_missing"].dtype == np.float64
    assert np.isnan(frame["int_missing"].iloc[1])
    assert frame["real"].dtype == np.float64
    assert np.isnan(frame["real"].iloc[2])
    assert frame["flag"].dtype == bool
    assert frame["flag"].tolist() == [True, False, True]
    assert frame["flag_missing"].iloc[0] is True
    assert frame["flag_missing"].iloc[2] is False
    assert isinstance(frame["flag_missing"].iloc[1], float)  # NaN, like other missing values
    # text: compares equal to plain str, missing is NaN, whitespace-only cells are kept
    text = frame["text"]
    assert pd.api.types.is_string_dtype(text) or text.dtype == object
    assert text.iloc[0] == "a"
    assert isinstance(text.iloc[1], float) and np.isnan(text.iloc[1])
    assert text.iloc[2] == " "
    assert (text == "a").tolist() == [True, False, False]
    assert frame["empty"].isna().all()
    assert len(frame.columns) == 8  # the all-empty column is kept
    assert pd.api.types.is_datetime64_any_dtype(frame["day"])
    assert frame["day"].iloc[0] == pd.Timestamp("2024-01-31")


def test_text_column_after_numbers_in_later_blocks(tmp_path: Path) -> None:
    # Types must come from the whole file, not only from its first block.
    data = b"a,b\n" + b"1,2\n" * 500_000 + b"x,2.5\n"
    frame = read_csv(write(tmp_path, data)).frame
    assert frame["a"].iloc[-1] == "x"
    assert frame["a"].iloc[0] == "1"
    assert frame["b"].dtype == np.float64


# --- read_csv_bytes and max_rows ----------------------------------------------------------------


def test_read_csv_bytes() -> None:
    data = b"a,b\n1,x\n2,y\n"
    table = read_csv_bytes(data)
    assert isinstance(table, CsvTable)
    assert table.path == "upload.csv"
    assert table.n_bytes == len(data)
    assert not table.compressed
    assert table.frame["b"].tolist() == ["x", "y"]


def test_read_csv_bytes_gzip_and_name() -> None:
    table = read_csv_bytes(gzip.compress(b"a\tb\n1\t2\n"), name="sales.csv.gz")
    assert table.compressed
    assert table.path == "sales.csv.gz"
    assert table.delimiter == "\t"


def test_read_csv_bytes_errors_name_the_upload() -> None:
    with pytest.raises(DataFileError, match=r"^sales\.csv, line 3: .*3 fields, expected 2"):
        read_csv_bytes(b"a,b\n1,2\n3,4,5\n", name="sales.csv")


def test_max_rows_reads_a_preview(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n" + b"1,x\n" * 1000)
    table = read_csv(path, max_rows=10)
    assert table.frame.shape == (10, 2)
    assert table.n_bytes == path.stat().st_size


def test_max_rows_preview_widens_types_seen_late(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1,2\n" * 1_000_000 + b"x,2.5\n"
    table = read_csv(write(tmp_path, data), max_rows=1_000_001)
    assert table.frame["a"].iloc[-1] == "x"
    assert table.frame["b"].iloc[-1] == 2.5


def test_str_path_and_path_given_back_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,2\n")
    assert read_csv(str(path)).path == str(path)


# --- errors -------------------------------------------------------------------------------------


def test_error_is_invalid_input() -> None:
    assert issubclass(DataFileError, InvalidInput)


def test_file_not_found(tmp_path: Path) -> None:
    error = read_error(tmp_path / "missing.csv")
    assert "missing.csv" in str(error)
    assert "not found" in str(error)


def test_directory(tmp_path: Path) -> None:
    assert "directory" in str(read_error(tmp_path))


@pytest.mark.parametrize("data", [b"", b"   \n\n\t\r\n"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    error = read_error(write(tmp_path, data, "empty.csv"))
    assert str(error).startswith(f"{tmp_path / 'empty.csv'}: ")
    assert "empty" in str(error) or "only whitespace" in str(error)


def test_empty_gzip(tmp_path: Path) -> None:
    assert "is empty" in str(read_error(write(tmp_path, gzip.compress(b""), "e.csv.gz")))


def test_header_only(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b,c\n", "head.csv"))
    assert "head.csv" in str(error)
    assert "no data rows" in str(error)


def test_single_column(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"price\n1\n2\n", "one.csv"))
    message = str(error)
    assert error.line == 1
    assert "one.csv" in message
    assert "only one column" in message
    assert "delimiter" in message
    for tried in ("comma", "semicolon", "tab", "pipe"):
        assert tried in message
    assert "target" in message and "feature" in message


def test_single_column_is_fine_for_rows_to_predict(tmp_path: Path) -> None:
    """A model may have one feature, so the rows sent to it may be one column."""
    table = read_csv(write(tmp_path, b"price\n1\n2.5\n", "one.csv"), min_columns=1)
    assert list(table.frame.columns) == ["price"]
    assert table.frame["price"].tolist() == [1.0, 2.5]
    from_bytes = read_csv_bytes(b'city\nOslo\n"Lima, Peru"\n', min_columns=1)
    assert from_bytes.frame["city"].tolist() == ["Oslo", "Lima, Peru"]
    # Two columns with another delimiter are still found as two.
    assert list(read_csv_bytes(b"a;b\n1;2\n", min_columns=1).frame.columns) == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40,
            "looks like a ZIP/Excel file; export it as CSV",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "Excel 97-2003 (.xls)"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG image"),
        (b"%PDF-1.4\n", "PDF"),
        (b"<!DOCTYPE html>\n<html><body>a,b</body></html>\n", "HTML"),
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_binary_and_non_csv_content(tmp_path: Path, data: bytes, expected: str) -> None:
    error = read_error(write(tmp_path, data, "upload.csv"))
    assert "upload.csv" in str(error)
    assert expected in str(error)


def test_zip_inside_gzip_is_still_recognised(tmp_path: Path) -> None:
    data = gzip.compress(b"PK\x03\x04" + b"\x00" * 40)
    assert "ZIP/Excel" in str(read_error(write(tmp_path, data, "x.csv.gz")))


def test_nul_bytes_name_their_line(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b\n1,2\n3,\x00\x00\n", "nul.csv"))
    assert error.line == 3
    assert str(error).startswith(f"{tmp_path / 'nul.csv'}, line 3: ")
    assert "NUL" in str(error)


def test_too_many_fields(tmp_path: Path) -> None:
    rows = [b"a,b,c,d"] + [b"1,2,3,4"] * 5 + [b"1,2,3,4,5", b"1,2,3,4"]
    error = read_error(write(tmp_path, b"\n".join(rows) + b"\n", "rows.csv"))
    assert error.line == 7
    message = str(error)
    assert message.startswith(f"{tmp_path / 'rows.csv'}, line 7: ")
    assert "line 7 has 5 fields, expected 4 (the header has 4 columns)" in message
    assert "double quotes" in message


def test_too_few_fields_are_never_padded(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b,c\n1,2,3\n4,5\n", "short.csv"))
    assert error.line == 3
    assert "line 3 has 2 fields, expected 3 (the header has 3 columns)" in str(error)


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    # The quoted value spans lines 2-4 and line 6 is blank, so the bad row is on line 8.
    data = b'a,b\n1,"x\ny\nz"\n2,3\n\n4,5\n6\n'
    error = read_error(write(tmp_path, data))
    assert error.line == 8
    assert "line 8 has 1 field, expected 2" in str(error)


def test_line_numbers_with_crlf(tmp_path: Path) -> None:
    data = b'a,b\r\n1,"x\r\ny"\r\n2,3\r\n4,5,6\r\n'
    assert read_error(write(tmp_path, data)).line == 5


def test_bad_row_far_into_a_large_file(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1,2\n" * 300_000 + b"1,2,3\n"
    error = read_error(write(tmp_path, data))
    assert error.line == 300_002
    assert "3 fields, expected 2" in str(error)


def test_bad_row_in_gzip_file(tmp_path: Path) -> None:
    data = gzip.compress(b"a;b\n1;2\n3\n")
    error = read_error(write(tmp_path, data, "g.csv.gz"))
    assert error.line == 3
    assert "g.csv.gz" in str(error)


def test_unterminated_quote_at_end_of_file(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b'a,b\n1,2\n3,"oops\n4,5\n', "quote.csv"))
    assert error.line == 3
    assert "quote.csv" in str(error)
    assert "never closed" in str(error)


def test_unterminated_quote_that_swallows_fields(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b'a,b,c\n1,"oops,2\n4,5,6\n'))
    assert error.line == 2
    assert "closing quote" in str(error)


def test_stray_quote_inside_a_value_is_text(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"height,n\n5'11\",1\n6',2\n"))
    assert table.frame["height"].tolist() == ["5'11\"", "6'"]


def test_duplicate_column_names(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"x,a,y,z,a\n1,2,3,4,5\n", "dup.csv"))
    assert error.line == 1
    assert 'duplicate column names: "a" (columns 2 and 5)' in str(error)
    assert "dup.csv, line 1: " in str(error)


def test_duplicate_after_stripping_whitespace(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a, a ,b,a\n1,2,3,4\n"))
    assert '"a" (columns 1, 2 and 4)' in str(error)


def test_blank_column_name(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b, ,d\n1,2,3,4\n", "blank.csv"))
    assert error.line == 1
    assert "column 3 has no name" in str(error)


def test_trailing_delimiter_in_header(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b,\n1,2,\n"))
    assert "column 3 has no name" in str(error)
    assert "end of the header line" in str(error)


def test_messages_have_no_traceback_text(tmp_path: Path) -> None:
    error = read_error(write(tmp_path, b"a,b\n1,2\n3,4,5\n"))
    assert "Traceback" not in str(error)
    assert "pyarrow" not in str(error).lower()
    assert error.__cause__ is None


# --- real datasets ------------------------------------------------------------------------------


def _manifest() -> list[dict[str, object]]:
    if not (DATASETS / "manifest.json").is_file():
        return []
    return json.loads((DATASETS / "manifest.json").read_text())["datasets"]


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"shared datasets not found at {DATASETS}")
@pytest.mark.parametrize("entry", _manifest(), ids=lambda entry: str(entry["name"]))
def test_shared_datasets_match_manifest(entry: dict[str, object]) -> None:
    table = read_csv(DATASETS / str(entry["file"]))
    assert table.frame.shape == (entry["rows"], entry["columns"])
    assert table.n_bytes == entry["bytes"]
    assert table.delimiter == ","
    assert str(entry["target"]) in table.frame.columns
    for column, n_missing in dict(entry.get("missing_by_column") or {}).items():  # type: ignore[call-overload]
        assert table.frame[column].isna().sum() == n_missing, column


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"shared datasets not found at {DATASETS}")
def test_every_shared_csv_is_in_the_manifest() -> None:
    listed = {str(entry["file"]) for entry in _manifest()}
    on_disk = {path.name for path in DATASETS.iterdir() if re.search(r"\.csv(\.gz)?$", path.name)}
    assert on_disk <= listed


# --- raw bytes: sniffing and cutting a stream into chunks of records (csvbytes) ----------------


def split(data: bytes, chunk_bytes: int) -> tuple[bytes, list[bytes]]:
    header, chunks = split_records(decompressed(io.BytesIO(data)), chunk_bytes)
    return header, list(chunks)


def test_sniffing_tells_gzip_and_binary_formats() -> None:
    assert is_gzip(GZIP_MAGIC + b"rest") and is_gzip(gzip.compress(b"a,b\n"))
    assert not is_gzip(b"a,b\n1,2\n")
    assert "Excel" in (binary_signature(b"PK\x03\x04rest") or "")
    assert "web page" in (binary_signature(b"  <!DOCTYPE html><html>") or "")
    assert binary_signature(b"a,b\n1,2\n") is None


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("chunk_bytes", [7, 64, 1 << 20])
def test_chunks_are_whole_records_and_rejoin_to_the_file(compress: bool, chunk_bytes: int) -> None:
    rows = [f'{i},"note {i}\nwith ""quotes"" and, a comma",x{i}\n' for i in range(200)]
    plain = b"\n\nid,note,tag\n" + "".join(rows).encode()
    header, chunks = split(gzip.compress(plain) if compress else plain, chunk_bytes)
    assert header == b"\n\nid,note,tag\n"  # blank lines before the header stay with it
    assert header + b"".join(chunks) == plain
    if chunk_bytes == 64:  # each record (about 45 bytes) fits in a chunk
        assert len(chunks) > 50
    total = 0
    for chunk in chunks:
        frame = read_csv_bytes(header + chunk).frame
        assert frame["note"].str.startswith("note ").all()
        total += len(frame)
    assert total == 200


def test_a_file_without_records_after_the_header() -> None:
    assert split(b"a,b\n", 100) == (b"a,b\n", [])
    assert split(b"a,b", 100) == (b"a,b", [])
    assert split(b"a,b\n\n\n", 100) == (b"a,b\n", [])


def test_a_quote_never_closed_is_an_error_not_unbounded_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csvbytes, "MAX_RECORD_BYTES", 1000)
    _, chunks = split_records(io.BytesIO(b'a,b\n1,"open\n' + b"x,y\n" * 1000), 100)
    with pytest.raises(InvalidInput, match="never closed"):
        list(chunks)
    with pytest.raises(InvalidInput, match="header line is longer"):
        split_records(io.BytesIO(b'"a' + b"x\n" * 2000), 100)


def test_a_damaged_gzip_stream_is_a_clear_error() -> None:
    data = gzip.compress(b"a,b\n" + np.random.default_rng(0).bytes(100_000))[:2000]
    with pytest.raises(InvalidInput, match="gzip-compressed CSV is damaged"):
        split(data, 1000)


def test_one_column_is_a_last_resort_for_rows_to_predict(tmp_path: Path) -> None:
    """A header that a delimiter splits keeps its columns even when a row is short."""
    error = read_error(write(tmp_path, b"x1,color\n1.0\n", "short.csv"), min_columns=1)
    assert "line 2" in str(error)
