"""A CSV file's raw bytes, before any parsing: what the file is, and where its records end.

`io.py` parses; this module looks at bytes only. It recognises gzip and the binary formats
people upload by mistake (Excel, images, archives) by their first bytes, and cuts a stream of
any size into chunks of whole records (`split_records`), so that each chunk can be parsed on its
own with the header in front (`read_csv_bytes(header + chunk)`) in bounded memory.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tabpilot.errors import InvalidInput

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of every gzip file."""

MAX_RECORD_BYTES = 8 << 20
"""A CSV record (row) may not be longer than this when a stream is split. A record is parsed
whole in the serving process, and a tiny gzip can inflate to one endless line: at 64 MiB a
60 KB request cost half a minute and +300 MB there; 8 MiB is still far beyond any real row."""

_READ_BYTES = 1 << 20

EXCEL_HOW = "(in Excel: File > Save As > CSV UTF-8 (Comma delimited))"
_EXPORT_HINT = f"export it as CSV {EXCEL_HOW}"
# (magic bytes, what the file looks like and what to do)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", f"looks like a ZIP/Excel file; {_EXPORT_HINT}"),
    (b"PK\x05\x06", f"looks like a ZIP/Excel file; {_EXPORT_HINT}"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        f"looks like an Excel 97-2003 (.xls) file; {_EXPORT_HINT}",
    ),
    (b"\x89PNG\r\n\x1a\n", "looks like a PNG image, not a CSV file; upload the data as CSV"),
    (b"\xff\xd8\xff", "looks like a JPEG image, not a CSV file; upload the data as CSV"),
    (b"GIF8", "looks like a GIF image, not a CSV file; upload the data as CSV"),
    (b"%PDF", "looks like a PDF document, not a CSV file; upload the data as CSV"),
    (b"PAR1", "looks like a Parquet file; export it as CSV"),
    (b"SQLite format 3\x00", "looks like an SQLite database; export the table as CSV"),
    (b"BZh", "is compressed with bzip2; only gzip (.csv.gz) is supported: decompress it first"),
    (b"\xfd7zXZ\x00", "is compressed with xz; only gzip (.csv.gz) is supported: decompress it"),
    (b"(\xb5/\xfd", "is compressed with zstd; only gzip (.csv.gz) is supported: decompress it"),
    (b"7z\xbc\xaf\x27\x1c", "looks like a 7-Zip archive; extract the CSV and upload that"),
    # UTF-32 first: its little-endian byte-order mark starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "is UTF-32 encoded text; save it as CSV UTF-8 instead"),
    (b"\x00\x00\xfe\xff", "is UTF-32 encoded text; save it as CSV UTF-8 instead"),
    (b"\xff\xfe", "is UTF-16 encoded text; save it as CSV UTF-8 instead"),
    (b"\xfe\xff", "is UTF-16 encoded text; save it as CSV UTF-8 instead"),
)
_HTML_START = re.compile(rb"\s*<(!doctype\s+html|html|\?xml)", re.IGNORECASE)


# -- what the bytes are ----------------------------------------------------------------------


def is_gzip(head: bytes) -> bool:
    """Whether data starting with `head` (its first two bytes suffice) is gzip-compressed."""
    return head[:2] == GZIP_MAGIC


def binary_signature(head: bytes) -> str | None:
    """What a file starting with `head` looks like when it is not text, and what to do."""
    for magic, message in _SIGNATURES:
        if head.startswith(magic):
            return message
    if _HTML_START.match(head[:1024]):
        return "looks like a web page (HTML/XML), not a CSV file; download the raw CSV data"
    if _utf16_without_bom(head):
        return "is UTF-16 encoded text (without a byte-order mark); save it as CSV UTF-8 instead"
    return None


def _utf16_without_bom(head: bytes) -> bool:
    """Whether `head` reads as ASCII text written in UTF-16 without a byte-order mark: every
    other byte NUL, the bytes between them text (not a file of NUL bytes)."""
    sample = head[: min(len(head), 64) // 2 * 2]
    if len(sample) < 4:
        return False
    for zeros, text in ((sample[1::2], sample[0::2]), (sample[0::2], sample[1::2])):
        if not zeros.strip(b"\x00") and text.isascii() and b"\x00" not in text:
            return True
    return False


def decompressed(
    stream: BinaryIO,
    *,
    max_bytes: int | None = None,
    too_large: Callable[[int], Exception] | None = None,
) -> BinaryIO:
    """`stream` (seekable, at its start) as plain bytes: gunzipped on the fly if gzip.

    With `max_bytes`, reading a gzip stream past that many decompressed bytes raises
    `too_large(max_bytes)` (default: `InvalidInput`), so a gzip bomb stops there.
    """
    head = stream.read(2)
    stream.seek(0)
    if not is_gzip(head):
        return stream
    inflated = gzip.GzipFile(fileobj=stream, mode="rb")
    if max_bytes is None:
        return inflated  # type: ignore[return-value]
    return _Budgeted(inflated, max_bytes, too_large or _default_too_large)  # type: ignore[return-value]


def _default_too_large(limit: int) -> Exception:
    return InvalidInput(f"The gzip-compressed CSV is larger than {limit:,} bytes decompressed")


class _Budgeted:
    """A reader that raises once more than `limit` bytes have been read from `inner`."""

    def __init__(
        self, inner: gzip.GzipFile, limit: int, too_large: Callable[[int], Exception]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._too_large = too_large
        self._total = 0

    def read(self, size: int = -1) -> bytes:
        room = self._limit - self._total + 1  # one byte past the limit tells it was passed
        block = self._inner.read(room if size < 0 or size > room else size)
        self._total += len(block)
        if self._total > self._limit:
            raise self._too_large(self._limit)
        return block

    def close(self) -> None:
        self._inner.close()


def inflated_size(path: Path, *, stop_after: int) -> int:
    """How many bytes the file at `path` holds once gunzipped (its own size if not gzip).

    Counting stops as soon as more than `stop_after` bytes have come out, so a gzip bomb costs
    at most that much decompression work, and one read buffer of memory. The gzip trailer's
    size field is not used: it is modulo 4 GiB, covers one member only, and a crafted file can
    put anything there.

    A damaged or truncated gzip stream counts the bytes before the damage: the CSV reader
    reports the damage itself, in its own words.
    """
    with open(path, "rb") as raw:
        if not is_gzip(raw.read(2)):
            return path.stat().st_size
        raw.seek(0)
        total = 0
        with gzip.GzipFile(fileobj=raw, mode="rb") as inflated:
            while total <= stop_after:
                try:
                    block = inflated.read(_READ_BYTES)
                except (OSError, EOFError, zlib.error):
                    break
                if not block:
                    break
                total += len(block)
        return total


# -- where records end -----------------------------------------------------------------------


def split_records(source: BinaryIO, chunk_bytes: int) -> tuple[bytes, Iterator[bytes]]:
    """The header record of the CSV in `source`, and an iterator of chunks of whole records.

    Each chunk is about `chunk_bytes` long (longer only to finish a record); blank chunks are
    skipped. Blank lines before the header are part of the header, as the reader expects.

    Raises:
        InvalidInput: the header or a record is longer than `MAX_RECORD_BYTES` (usually a
            quote never closed), or a gzip stream is damaged (also while iterating).
    """
    buffer = b""
    header = b""
    eof = False
    while not eof:
        block = _read(source, _READ_BYTES)
        eof = not block
        buffer += block
        first = _first_record_end(buffer)
        if first >= 0:
            header, buffer = buffer[:first], buffer[first:]
            break
        if len(buffer) > MAX_RECORD_BYTES:
            raise InvalidInput(
                f"The CSV's header line is longer than {MAX_RECORD_BYTES >> 20} MB; is it a CSV "
                "file? Send a header line with the column names, then one row per line."
            )
    else:
        header, buffer = buffer, b""
    return header, _chunks(source, buffer, eof, chunk_bytes)


def _chunks(source: BinaryIO, buffer: bytes, eof: bool, chunk_bytes: int) -> Iterator[bytes]:
    while True:
        while not eof and len(buffer) < chunk_bytes:
            block = _read(source, chunk_bytes - len(buffer))
            if not block:
                eof = True
                break
            buffer += block
        if eof:
            if buffer.strip():
                yield buffer
            return
        cut = _record_end(buffer, 0, min(len(buffer), chunk_bytes), 0)
        if cut <= 0:
            cut = _record_end(buffer, 0, len(buffer), 0)
        if cut <= 0:
            # One record longer than a chunk, or a quote never closed: read on, up to a
            # limit, so a broken file cannot fill the memory.
            if len(buffer) > MAX_RECORD_BYTES:
                raise InvalidInput(
                    f"A row of the CSV is longer than {MAX_RECORD_BYTES >> 20} MB, which "
                    'usually means a quote (") is never closed, or a value is far too long; '
                    "check the quotes and the long values in the file"
                )
            block = _read(source, chunk_bytes)
            if not block:
                eof = True
            buffer += block
            continue
        piece, buffer = buffer[:cut], buffer[cut:]
        if piece.strip():
            yield piece


def _record_end(data: bytes, start: int, end: int, quotes_before: int) -> int:
    """Offset just after the last record boundary in `data[start:end]`, or -1.

    A newline ends a record when an even number of quotes precede it: quoted values (and
    doubled quotes inside them) always come in pairs, so an odd count means the newline is
    inside a quoted value. Newlines and quotes are the same single bytes in every encoding
    the reader accepts (UTF-8, cp1252, latin-1).
    """
    pos = data.rfind(b"\n", start, end)
    while pos >= 0:
        if (quotes_before + data.count(b'"', start, pos)) % 2 == 0:
            return pos + 1
        pos = data.rfind(b"\n", start, pos)
    return -1


def _first_record_end(data: bytes) -> int:
    """Offset after the first non-blank record (the header) in `data`, or -1 if incomplete."""
    start = 0
    quotes = 0
    while True:
        pos = data.find(b"\n", start)
        if pos < 0:
            return -1
        quotes += data.count(b'"', start, pos)
        start = pos + 1
        if quotes % 2 == 0 and data[:pos].strip():
            return start


def _read(source: BinaryIO, size: int) -> bytes:
    try:
        return source.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInput(
            f"The gzip-compressed CSV is damaged or truncated ({exc}); compress it again or "
            "send the plain CSV."
        ) from None
