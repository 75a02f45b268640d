"""Receiving an uploaded file straight from the request stream into a `StagedUpload`.

FastAPI's `UploadFile` would parse the whole multipart body (spooling it to a temporary file)
before the route runs, so a size limit could only be checked once everything had arrived.
Here the body is parsed as it streams in: file bytes go to the staged file chunk by chunk,
hashed on the way, and the upload stops with 413 the moment it passes the limit. Memory use
is one network chunk, whatever the file size.

Two request shapes are accepted:
- `multipart/form-data` with the file in the field `file` (what browsers and
  `curl -F file=@data.csv` send) and optionally a `name` field;
- the raw file as the body (`curl --data-binary @data.csv -H 'Content-Type: text/csv'`), with
  `?filename=` giving its name.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from tabpilot.context import AppContext
from tabpilot.errors import InvalidInput
from tabpilot.services.datasets import StagedUpload, stage_upload, upload_too_large

MAX_FIELD_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024  # the headers of one part (Content-Disposition, ...)
MULTIPART_OVERHEAD = 1024 * 1024  # headers and boundaries on top of the file itself
RAW_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
    }
)
FILE_FIELD = "file"

UPLOAD_HINT = (
    "send the CSV as the multipart field 'file' (curl -F file=@data.csv URL) or as the raw body "
    "(curl --data-binary @data.csv -H 'Content-Type: text/csv' 'URL?filename=data.csv')"
)

UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The CSV file (.csv or gzip-compressed .csv.gz). " + UPLOAD_HINT + ".",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The CSV file.",
                        },
                        "name": {
                            "type": "string",
                            "description": "A name for the dataset (default: the file name).",
                        },
                    },
                }
            },
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class _MultipartReceiver:
    """python-multipart callbacks writing the file part to a staged upload.

    Only the known parts are accepted: one file in the field `file`, and each of
    `text_fields` at most once; anything else is refused at its headers, so a form cannot
    make the server hold any number of fields.
    """

    def __init__(self, ctx: AppContext, text_fields: tuple[str, ...]) -> None:
        self.ctx = ctx
        self.text_fields = text_fields
        self._header_bytes = 0
        self.upload: StagedUpload | None = None
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._in_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._header_bytes = 0
        self._disposition = b""
        self._field = None
        self._in_file = False
        self._buffer = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _count_header(self, n_bytes: int) -> None:
        self._header_bytes += n_bytes
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise InvalidInput(
                f"A part of the multipart body has headers longer than {MAX_PART_HEADER_BYTES:,} "
                "bytes; " + UPLOAD_HINT
            )

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self.upload is not None:
                raise InvalidInput("Upload one file per request; " + UPLOAD_HINT)
            if name != FILE_FIELD:
                raise InvalidInput(
                    f'The file is in the form field "{name[:100]}"; send it as the field '
                    f'"{FILE_FIELD}": ' + UPLOAD_HINT
                )
            filename = options[b"filename"].decode("utf-8", "replace")
            self.upload = stage_upload(self.ctx, filename=filename)
            self._in_file = True
        elif name not in self.text_fields or name in self.fields:
            accepted = ", ".join(f'"{f}"' for f in (FILE_FIELD, *self.text_fields))
            what = "more than once" if name in self.fields else "which this endpoint does not take"
            raise InvalidInput(
                f'The form has the field "{name[:100]}" {what}; send only {accepted} (each once).'
            )
        else:
            self._field = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self.upload is not None
            self.upload.write(data[start:end])
        elif self._field is not None:
            if len(self._buffer) + (end - start) > MAX_FIELD_BYTES:
                raise InvalidInput(
                    f'The form field "{self._field}" is longer than {MAX_FIELD_BYTES:,} bytes'
                )
            self._buffer.extend(data[start:end])

    def on_part_end(self) -> None:
        if self._field is not None and not self._in_file:
            self.fields[self._field] = self._buffer.decode("utf-8", "replace")
        self._in_file = False
        self._field = None


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def receive_upload(
    request: Request,
    ctx: AppContext,
    *,
    filename: str | None = None,
    text_fields: tuple[str, ...] = (),
) -> tuple[StagedUpload, dict[str, str]]:
    """Stream the request body into a `StagedUpload`; return it with the form's text fields
    (only those named in `text_fields` are accepted, each once).

    The caller owns the returned upload and must `discard()` it.

    Raises:
        UploadTooLarge: the declared or received size passes `TABPILOT_MAX_UPLOAD_MB`.
        InvalidInput: no file, two files, a form field other than `file` and `text_fields` (or
            one of those twice), a malformed body or an unsupported content type.
    """
    limit = ctx.settings.max_upload_bytes
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    media = content_type.decode("latin-1").lower()
    declared = _content_length(request)
    if media == "multipart/form-data":
        if declared is not None and declared > limit + MULTIPART_OVERHEAD:
            raise upload_too_large(limit)
        return await _receive_multipart(request, ctx, params, text_fields)
    if media in RAW_TYPES:
        if declared is not None and declared > limit:
            raise upload_too_large(limit)
        return await _receive_raw(request, ctx, filename), {}
    shown = media or "none"
    raise InvalidInput(f"Unsupported Content-Type ({shown}) for an upload; {UPLOAD_HINT}")


async def _receive_multipart(
    request: Request, ctx: AppContext, params: dict[bytes, bytes], text_fields: tuple[str, ...]
) -> tuple[StagedUpload, dict[str, str]]:
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInput("The multipart body has no boundary in its Content-Type; " + UPLOAD_HINT)
    receiver = _MultipartReceiver(ctx, text_fields)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _discard(receiver.upload)
        raise InvalidInput(f"The multipart body is malformed ({exc}); {UPLOAD_HINT}") from None
    except ClientDisconnect:
        _discard(receiver.upload)
        raise InvalidInput("The client disconnected before the upload finished") from None
    except BaseException:
        _discard(receiver.upload)
        raise
    if receiver.upload is None:
        raise InvalidInput("The request holds no file; " + UPLOAD_HINT)
    receiver.upload.finish()
    return receiver.upload, receiver.fields


async def _receive_raw(request: Request, ctx: AppContext, filename: str | None) -> StagedUpload:
    upload = stage_upload(ctx, filename=filename or "upload.csv")
    try:
        async for chunk in request.stream():
            upload.write(chunk)
    except ClientDisconnect:
        upload.discard()
        raise InvalidInput("The client disconnected before the upload finished") from None
    except BaseException:
        upload.discard()
        raise
    upload.finish()
    return upload


def _discard(upload: StagedUpload | None) -> None:
    if upload is not None:
        upload.discard()
