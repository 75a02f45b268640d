"""Documents that can grow (a dataset's profile, a model's card) kept under DynamoDB's 400 KB.

A document up to `INLINE_LIMIT` bytes of JSON is an attribute of its record. A larger one is
compressed (zlib; profiles and cards are repetitive JSON that shrinks several times) and split
into items of at most `CHUNK_BYTES` in the record's own partition
(`doc#<field>#<version>#<n>`); the record holds only a pointer (`<field>_doc`: the version and
the number of pieces). A write puts the new version's pieces first and then switches the
pointer with the record's conditional write, so a reader sees the old document or the new one,
never a mix; the old pieces are deleted after the switch. A reader that finds a version's
pieces gone (replaced meanwhile) reads the record again.

Why pieces in the table rather than S3 objects with a pointer: the metadata store stays one
service with one URI, one IAM grant and one backup (point-in-time recovery covers documents and
records alike); a record and its document are deleted together; nothing has to keep a bucket
and a table consistent when one of two writes fails. A multi-megabyte profile compresses to a
few pieces, which one Query reads. Pieces of a write that died before its switch are left in
the record's partition and removed with the record.
"""

from __future__ import annotations

import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

from tabpilot.metadata.dynamo_base import DynamoStoreBase
from tabpilot.metadata.dynamo_items import DOC_PREFIX, json_text, to_wire

INLINE_LIMIT = 32 * 1024
"""JSON bytes a document may take inside its record item."""
CHUNK_BYTES = 256 * 1024
"""Compressed bytes per piece: with its keys, well under the 400 KB item limit."""


class StaleDocument(Exception):
    """The pieces of the version a record points to were replaced meanwhile; read again."""


@dataclass
class Document:
    """A document ready to be written: the record's attributes and the pieces to put first."""

    field_name: str
    attrs: dict[str, Any]
    pieces: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        pointer = self.attrs.get(f"{self.field_name}_doc")
        return str(pointer["v"]) if pointer else None


def prepare(pk: str, field_name: str, value: dict[str, Any]) -> Document:
    """`value` as record attributes, split into pieces when it is large."""
    text = json_text(value)
    data = text.encode()
    if len(data) <= INLINE_LIMIT:
        return Document(field_name, {field_name: text, f"{field_name}_doc": None})
    packed = zlib.compress(data, 6)
    version = secrets.token_hex(8)
    pieces = [
        {
            "pk": pk,
            "sk": piece_sk(field_name, version, n),
            "data": packed[start : start + CHUNK_BYTES],
        }
        for n, start in enumerate(range(0, len(packed), CHUNK_BYTES))
    ]
    pointer = {"v": version, "n": len(pieces), "bytes": len(data)}
    return Document(field_name, {field_name: None, f"{field_name}_doc": pointer}, pieces)


def piece_sk(field_name: str, version: str, n: int) -> str:
    return f"{DOC_PREFIX}{field_name}#{version}#{n:05d}"


def write_pieces(store: DynamoStoreBase, document: Document) -> None:
    """Put the document's pieces (before the record points to them)."""
    if document.pieces:
        store._batch_write([{"PutRequest": {"Item": to_wire(p)}} for p in document.pieces])


def drop_version(store: DynamoStoreBase, pk: str, field_name: str, version: str | None) -> None:
    """Delete the pieces of one version (after the record stopped pointing to them)."""
    if version:
        old = list(store._partition(pk, f"{DOC_PREFIX}{field_name}#{version}#"))
        store._delete_items(old)


def read(store: DynamoStoreBase, values: dict[str, Any], field_name: str) -> dict[str, Any]:
    """The document `field_name` of the record `values`; raises `StaleDocument` when its
    pieces were replaced since the record was read."""
    pointer = values.get(f"{field_name}_doc")
    if not pointer:
        text = values.get(field_name)
        return json.loads(text) if text else {}
    version, count = str(pointer["v"]), int(pointer["n"])
    pieces = list(store._partition(values["pk"], f"{DOC_PREFIX}{field_name}#{version}#"))
    if len(pieces) != count:
        raise StaleDocument(values["pk"])
    packed = b"".join(bytes(p["data"]) for p in sorted(pieces, key=lambda p: p["sk"]))
    loaded: dict[str, Any] = json.loads(zlib.decompress(packed))
    return loaded


def version_of(values: dict[str, Any], field_name: str) -> str | None:
    pointer = values.get(f"{field_name}_doc")
    return str(pointer["v"]) if pointer else None
