"""Robust, fast CSV reading: encoding, delimiter, gzip, BOM and clear errors.

Parsing is done by pyarrow (multi-threaded, lean); Python's csv module is used only on small
samples and on error paths, where it finds the exact physical line of a problem that pyarrow
reports without one. Every problem a user can cause raises `DataFileError` naming the file and,
where it applies, the line (1-based, physical lines, the header being line 1). What the raw
bytes are (gzip, or a binary format sent by mistake) is told by `csvbytes.py`, which also cuts
a large stream into chunks of whole records for reading a piece at a time.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tabpilot.engine.data.csvbytes import EXCEL_HOW, binary_signature, is_gzip
from tabpilot.errors import DataFileError

__all__ = ["CsvTable", "read_csv", "read_csv_bytes"]

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}

# Encoding and delimiter are decided from the first chunk. The rest of the file is checked for
# valid UTF-8 by pyarrow for free: it reads undecodable text columns as binary ones.
_CHUNK_BYTES = 4 << 20
_SNIFF_RECORDS = 100
# pyarrow needs each row to fit in one block; larger blocks are tried only when one does not.
_BLOCK_SIZES = (1 << 20, 4 << 20, 64 << 20, 512 << 20)
# Bytes that cp1252 leaves undefined; text containing them can only be read as latin-1.
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")

_FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+):.*CSV conversion error to (\w+)")


# eq=False: a generated __eq__/__hash__ would compare DataFrames, which raises.
@dataclass(frozen=True, eq=False)
class CsvTable:
    """A CSV file read into a DataFrame, with what was detected about the file."""

    frame: pd.DataFrame
    path: str
    encoding: str  # "utf-8", "utf-8-sig", "cp1252" or "latin-1"
    delimiter: str  # one of , ; \t |
    compressed: bool  # gzip, detected by its magic bytes
    n_bytes: int  # size on disk (compressed size for .gz)


def read_csv(
    path: str | os.PathLike[str], *, max_rows: int | None = None, min_columns: int = 2
) -> CsvTable:
    """Read a .csv or .csv.gz file, detecting encoding, delimiter and compression.

    Args:
        path: The file to read.
        max_rows: Read at most this many data rows (a preview); the rest of the file is not
            parsed or checked. None reads everything.
        min_columns: The fewest columns allowed: 2 for a dataset, 1 for rows to predict.

    Raises:
        DataFileError: The file is missing, empty, not a CSV, or malformed; the message says
            where and what to do.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise DataFileError("is a directory, not a CSV file", path=name)
    try:
        n_bytes = os.path.getsize(name)
        with open(name, "rb") as fh:
            compressed = is_gzip(fh.read(2))
    except FileNotFoundError:
        raise DataFileError("file not found; check the path", path=name) from None
    except OSError as exc:
        raise DataFileError(f"cannot be opened: {exc.strerror or exc}", path=name) from None
    src = _Source(name=name, n_bytes=n_bytes, compressed=compressed, path=name)
    return _read(src, max_rows, min_columns)


def read_csv_bytes(data: bytes, *, name: str = "upload.csv", min_columns: int = 2) -> CsvTable:
    """Read CSV data held in memory (plain or gzip) with the same rules as `read_csv`.

    Args:
        data: The file's bytes.
        name: What to call the data in messages and in `CsvTable.path`.
        min_columns: As for `read_csv`.
    """
    src = _Source(name=name, n_bytes=len(data), compressed=is_gzip(data), data=data)
    return _read(src, None, min_columns)


@dataclass(frozen=True)
class _Source:
    """Where the bytes come from: a path or in-memory data, maybe gzip-compressed."""

    name: str
    n_bytes: int
    compressed: bool
    path: str | None = None
    data: bytes | None = None

    def open_binary(self) -> BinaryIO:
        """The decompressed bytes as a Python stream."""
        if self.data is not None:
            raw: BinaryIO = io.BytesIO(self.data)
            return gzip.GzipFile(fileobj=raw) if self.compressed else raw
        assert self.path is not None
        return gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb")

    def open_arrow(self) -> pa.NativeFile:
        """The decompressed bytes as an Arrow stream (decompression stays in C++)."""
        target = pa.py_buffer(self.data) if self.data is not None else self.path
        return pa.input_stream(target, compression="gzip" if self.compressed else None)

    def open_text(self, encoding: str) -> io.TextIOWrapper:
        """The decoded text, with line endings left for the csv module to interpret."""
        return io.TextIOWrapper(self.open_binary(), encoding=encoding, newline="", errors="replace")


@dataclass
class _Scan:
    """What one cheap pass over the raw bytes found."""

    head: bytes = b""
    complete: bool = False  # head holds the whole (decompressed) file
    n_quotes: int = 0
    nul_line: int | None = None
    has_content: bool = False  # anything besides whitespace


def _read(src: _Source, max_rows: int | None, min_columns: int = 2) -> CsvTable:
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    scan = _scan(src, full=max_rows is None)
    _check_content(src, scan)
    encoding = _detect_encoding(scan.head, complete=scan.complete)
    text = scan.head.decode(encoding, errors="replace")
    delimiter, header, header_line = _sniff(
        src, text, complete=scan.complete, min_columns=min_columns
    )
    names = _check_names(src, header, header_line)

    # A full read knows whether any quote exists; a preview only knows the sample.
    quoted = scan.n_quotes > 0 if max_rows is None else '"' in text
    table, encoding = _parse_with_fallbacks(
        src,
        encoding=encoding,
        delimiter=delimiter,
        quoted=quoted,
        n_cols=len(names),
        max_rows=max_rows,
    )
    if max_rows is None and scan.n_quotes % 2 == 1:
        # An odd number of quotes may be a stray literal quote, or a quote never closed,
        # which pyarrow silently reads as one value running to the end of the file.
        problem = _find_bad_record(src, encoding, delimiter, len(names), check_eof=True)
        if problem is not None:
            raise problem
    if table.num_rows == 0:
        raise DataFileError(
            "the file has a header line but no data rows; add at least one row of data",
            path=src.name,
        )
    if table.num_columns == len(names):
        table = table.rename_columns(names)
    else:  # pyarrow read the header differently from the sniffer; trust pyarrow.
        table = table.rename_columns(_check_names(src, table.column_names, header_line))
    frame = _to_pandas(table)
    return CsvTable(
        frame=frame,
        path=src.name,
        encoding=encoding,
        delimiter=delimiter,
        compressed=src.compressed,
        n_bytes=src.n_bytes,
    )


def _scan(src: _Source, *, full: bool) -> _Scan:
    """Read the first chunk, and with `full` the rest too, counting quotes and finding NULs."""
    scan = _Scan()
    n_newlines = 0
    try:
        with src.open_binary() as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                if not scan.head:
                    scan.head = chunk
                    if binary_signature(chunk) is not None:
                        return scan
                scan.n_quotes += chunk.count(b'"')
                scan.has_content = scan.has_content or bool(chunk.strip())
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    scan.nul_line = n_newlines + chunk.count(b"\n", 0, nul) + 1
                    return scan
                n_newlines += chunk.count(b"\n")
                if not full:
                    scan.complete = len(chunk) < _CHUNK_BYTES
                    break
            else:
                scan.complete = True
    except (OSError, EOFError, zlib.error) as exc:
        raise _gzip_error(src, exc) from None
    return scan


def _gzip_error(src: _Source, exc: BaseException) -> DataFileError:
    if src.compressed:
        return DataFileError(
            f"is not a valid gzip file, it may be damaged or truncated ({exc}); "
            "compress it again or upload the uncompressed .csv",
            path=src.name,
        )
    return DataFileError(f"cannot be read: {exc}", path=src.name)


def _check_content(src: _Source, scan: _Scan) -> None:
    if (message := binary_signature(scan.head)) is not None:
        raise DataFileError(message, path=src.name)
    if scan.nul_line is not None:
        raise DataFileError(
            "contains NUL bytes, so it is binary data, not a text CSV file; "
            f"export the data as CSV {EXCEL_HOW}",
            path=src.name,
            line=scan.nul_line,
        )
    if not scan.has_content:
        what = "is empty" if not scan.head else "contains only whitespace"
        raise DataFileError(
            f"the file {what}; a CSV needs a header line with the column names and at least "
            "one data row",
            path=src.name,
        )


def _detect_encoding(head: bytes, *, complete: bool) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        # Incremental, so a character cut in two at the end of the sample is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return _legacy_encoding([head])
    return "utf-8"


def _legacy_encoding(chunks: Iterable[bytes]) -> str:
    """cp1252 (Excel on Windows) unless a byte it leaves undefined occurs; then latin-1."""
    for chunk in chunks:
        if any(b in chunk for b in _CP1252_UNDEFINED):
            return "latin-1"
    return "cp1252"


def _iter_chunks(src: _Source) -> Iterator[bytes]:
    with src.open_binary() as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            yield chunk


@contextlib.contextmanager
def _large_csv_fields() -> Iterator[None]:
    """Let the csv module read fields as long as pyarrow does (its default is 128 KiB)."""
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _records(lines: Iterator[str], delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    """Yield (first line, last line, fields) for each non-blank record, as pyarrow sees them."""
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    last = 0
    for fields in reader:
        first, last = last + 1, reader.line_num
        if fields:  # pyarrow skips empty lines, so they are not rows
            yield first, last, fields


def _sniff(
    src: _Source, text: str, *, complete: bool, min_columns: int = 2
) -> tuple[str, list[str], int]:
    """Pick the delimiter whose field count is most consistent with the header's.

    Returns:
        The delimiter, the header's fields and the header's line number.
    """
    if not complete:  # drop the line cut in two by the end of the sample
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
    best: tuple[tuple[bool, float, int, int], str, list[str], int] | None = None
    first_line = 1
    with _large_csv_fields():
        for rank, delimiter in enumerate(DELIMITERS):
            records: list[tuple[int, int, list[str]]] = []
            try:
                for record in _records(io.StringIO(text, newline=""), delimiter):
                    records.append(record)
                    if len(records) > _SNIFF_RECORDS:
                        break
            except csv.Error:
                continue
            if not complete and len(records) > 1:
                records.pop()  # may be a quoted value cut by the end of the sample
            if not records:
                continue
            first_line, _, header = records[0]
            if len(header) < min_columns:
                continue
            rows = records[1:]
            consistency = sum(len(r[2]) == len(header) for r in rows) / len(rows) if rows else 1.0
            key = (len(header) > 1, consistency, len(header), -rank)  # 1 column: last resort
            if best is None or key > best[0]:
                best = (key, delimiter, header, first_line)
    if best is None:
        tried = ", ".join(_DELIMITER_NAMES[d] for d in DELIMITERS)
        raise DataFileError(
            f"only one column found: no delimiter could be found in the header line "
            f"(tried {tried}). A dataset needs a target column plus at least one feature "
            "column; save the file as CSV with a delimiter between the columns",
            path=src.name,
            line=first_line,
        )
    return best[1], best[2], best[3]


def _check_names(src: _Source, header: list[str], header_line: int) -> list[str]:
    names = [name.strip() for name in header]
    # Decoding already removed a BOM; this catches a doubled one.
    names[0] = names[0].lstrip("\ufeff").strip()
    blank = [i for i, name in enumerate(names, start=1) if not name]
    if blank:
        which = f"column {blank[0]} has" if len(blank) == 1 else f"columns {_and(blank)} have"
        hint = (
            "give it a name in the header line or delete the column"
            if len(blank) == 1
            else "give them names in the header line or delete those columns"
        )
        if blank[-1] == len(names):
            hint += " (a delimiter at the end of the header line makes an unnamed last column)"
        raise DataFileError(f"{which} no name; {hint}", path=src.name, line=header_line)
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(i)
    duplicates = [
        f'"{name}" (columns {_and(cols)})' for name, cols in positions.items() if len(cols) > 1
    ]
    if duplicates:
        more = f"; and {len(duplicates) - 10:,} more" if len(duplicates) > 10 else ""
        raise DataFileError(
            f"duplicate column names: {'; '.join(duplicates[:10])}{more}; rename the columns so "
            "that every name is unique",
            path=src.name,
            line=header_line,
        )
    return names


def _and(numbers: list[int]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _parse_with_fallbacks(
    src: _Source,
    *,
    encoding: str,
    delimiter: str,
    quoted: bool,
    n_cols: int,
    max_rows: int | None,
) -> tuple[pa.Table, str]:
    """Parse with pyarrow, retrying on the rare conditions that a faster setting cannot meet.

    Returns:
        The table and the encoding that finally decoded it.
    """
    column_types: dict[int, pa.DataType] = {}
    blocks = iter(_BLOCK_SIZES)
    block_size = next(blocks)
    tried_encodings = {encoding}
    while True:
        try:
            table = _parse(
                src,
                encoding=encoding,
                delimiter=delimiter,
                quoted=quoted,
                block_size=block_size,
                column_types=column_types,
                max_rows=max_rows,
            )
        except UnicodeDecodeError:
            # Only reachable for the cp1252 guess, whose codec rejects five bytes.
            if "latin-1" in tried_encodings:
                raise
            encoding = "latin-1"
            tried_encodings.add(encoding)
            continue
        except pa.ArrowInvalid as exc:
            message = str(exc)
            if "straddl" in message:
                block_size = next(blocks, None)
                if block_size is not None:
                    continue
                raise DataFileError(
                    f"a row is larger than {_BLOCK_SIZES[-1] >> 20} MB, which usually means "
                    "a quote is never closed; check the quotes in the file",
                    path=src.name,
                ) from None
            if _FIELD_COUNT_ERROR.search(message):
                if not quoted:  # a quoted line break beyond the sample split a block
                    quoted = True
                    continue
                # Even in a preview, a bad row in the block just read is reported: the file
                # has to be fixed anyway, and the preview's rows are not parsed separately.
                problem = _find_bad_record(src, encoding, delimiter, n_cols)
                raise problem or DataFileError(_arrow_message(message), path=src.name) from None
            if (conversion := _CONVERSION_ERROR.search(message)) is not None:
                # A preview infers types from its first block only; widen the offending column.
                index, to_type = int(conversion.group(1)), conversion.group(2)
                widened = pa.float64() if to_type == "int64" else pa.string()
                if column_types.get(index) != pa.string():
                    column_types[index] = widened
                    continue
            raise DataFileError(
                f"cannot be read as CSV: {_arrow_message(message)}", path=src.name
            ) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise _gzip_error(src, exc) from None
        if encoding.startswith("utf-8") and any(pa.types.is_binary(t) for t in table.schema.types):
            # pyarrow keeps text that is not valid UTF-8 as bytes: the sample was valid UTF-8
            # but a later part of the file is in a legacy encoding.
            encoding = _legacy_encoding(_iter_chunks(src))
            tried_encodings.add(encoding)
            continue
        return table, encoding


def _arrow_message(message: str) -> str:
    # pyarrow appends the row's text, which can be huge; keep the explanation only.
    return message.split("\n")[0][:300]


def _parse(
    src: _Source,
    *,
    encoding: str,
    delimiter: str,
    quoted: bool,
    block_size: int,
    column_types: dict[int, pa.DataType],
    max_rows: int | None,
) -> pa.Table:
    read_options = pacsv.ReadOptions(
        # pyarrow decodes UTF-8 natively (and skips a BOM); other encodings go through Python.
        encoding="utf8" if encoding.startswith("utf-8") else encoding,
        block_size=block_size,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        # Splitting blocks is faster when no value can contain a line break.
        newlines_in_values=quoted,
        ignore_empty_lines=True,
    )
    convert_options = pacsv.ConvertOptions(
        strings_can_be_null=True,
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
    )
    if column_types:
        # Types are given by name, and names are known only after pyarrow reads the header.
        with src.open_arrow() as stream:
            names = pacsv.open_csv(
                stream, read_options=read_options, parse_options=parse_options
            ).schema.names
        convert_options.column_types = {names[i]: t for i, t in column_types.items()}
    with src.open_arrow() as stream:
        if max_rows is None:
            return pacsv.read_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        reader = pacsv.open_csv(
            stream,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        batches: list[pa.RecordBatch] = []
        n_rows = 0
        while n_rows < max_rows:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            batches.append(batch)
            n_rows += batch.num_rows
        return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)


def _find_bad_record(
    src: _Source, encoding: str, delimiter: str, n_cols: int, *, check_eof: bool = False
) -> DataFileError | None:
    """Find the first record whose field count differs from the header's, or a quote that is
    never closed, and say on which physical line it starts.

    Slow (pure Python), so only used once pyarrow has reported a problem or one is likely.
    """
    record_lines: list[str] = []

    def lines(text: io.TextIOWrapper) -> Iterator[str]:
        for line in text:
            record_lines.append(line)
            yield line

    with src.open_text(encoding) as text, _large_csv_fields():
        records = _records(lines(text), delimiter)
        last: tuple[int, int, list[str]] | None = None
        last_lines: list[str] = []
        for first, end, fields in records:
            is_header = last is None
            last_lines, record_lines[:] = record_lines[:], []
            last = (first, end, fields)
            if len(fields) != n_cols and not is_header:
                return _field_count_error(src, first, end, len(fields), n_cols, delimiter)
    if check_eof and last is not None:
        try:
            list(csv.reader(last_lines, delimiter=delimiter, strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return DataFileError(
                    "a quoted value starting on this line is never closed, so it runs to the "
                    'end of the file; add the closing quote (") or remove the stray one',
                    path=src.name,
                    line=last[0],
                )
    return None


def _field_count_error(
    src: _Source, first: int, end: int, n_fields: int, n_cols: int, delimiter: str
) -> DataFileError:
    plural = "field" if n_fields == 1 else "fields"
    message = (
        f"line {first} has {n_fields} {plural}, expected {n_cols} "
        f"(the header has {n_cols} columns); "
    )
    if end > first:
        message += (
            f"this row runs from line {first} to line {end} because a quoted value contains "
            "line breaks; check for a missing closing quote"
        )
    elif n_fields > n_cols:
        message += (
            f"a value probably contains the delimiter, {_DELIMITER_NAMES[delimiter]}: put such "
            "values in double quotes"
        )
    else:
        message += "add the missing values (an empty field leaves a value missing)"
    return DataFileError(message, path=src.name, line=first)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):  # an all-empty column: numeric NaN, as pandas reads it
            table = table.set_column(i, field.name, pa.nulls(table.num_rows, pa.float64()))
        elif pa.types.is_time(field.type):  # clock times: keep the text rather than objects
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string()))
    bool_with_nulls = [
        field.name
        for field in table.schema
        if pa.types.is_boolean(field.type) and table.column(field.name).null_count
    ]
    # self_destruct frees each Arrow column once converted, keeping the peak memory low.
    frame = table.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
    for name in bool_with_nulls:  # object True/False/None -> True/False/NaN, like text columns
        column = frame[name]
        frame[name] = column.where(column.notna(), np.nan)
    return frame
