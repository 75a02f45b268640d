"""Models: listing, the model card, bundle files, and deploy keys.

A deploy key is a prediction-only credential for one model: `tpk_` followed by 43 random
URL-safe characters. Only its sha256 is stored (`ModelRecord.deploy_key_hash`), so the key is
shown once, when it is minted; deploying again mints a new key and the old one stops working,
and undeploying revokes it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.errors import Forbidden, NotFound, Unauthenticated
from tabpilot.metadata.base import DEFAULT_PAGE_LIMIT, Page, check_limit, not_found
from tabpilot.metadata.cache import cache_for
from tabpilot.records import ModelRecord
from tabpilot.services import check_id
from tabpilot.storage import keys

DEPLOY_KEY_PREFIX = "tpk_"

PREDICTION_RECORDS = "prediction-models"
"""The name of the `VersionedCache` of model records that predictions read."""

MODEL_FILES: tuple[str, ...] = ("model.onnx", "model.pkl", "model.json", "eda.html", "report.html")
"""The files of a model bundle that can be downloaded, in the order they are listed. Nothing
else can be: a requested name is looked up here, never joined into a path."""


@dataclass(frozen=True)
class ModelFile:
    """One downloadable file of a model, ready to stream."""

    model_id: str
    name: str
    key: str
    size: int
    local_path: Path | None  # the file itself when the store is local (served zero-copy)

    @property
    def download_name(self) -> str:
        """`<model id>-<name>`, so downloads of several models do not overwrite each other."""
        return f"{self.model_id}-{self.name}"


def list_models(
    ctx: AppContext,
    *,
    owner: str,
    job_id: str | None = None,
    limit: int = DEFAULT_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[ModelRecord]:
    """The owner's models, newest first."""
    return ctx.metadata.list_models(
        owner=owner, job_id=job_id, limit=check_limit(limit), cursor=cursor
    )


def get_model(ctx: AppContext, *, owner: str, model_id: str) -> ModelRecord:
    """Raises `NotFound` if missing or owned by someone else."""
    return ctx.metadata.get_model(check_id("Model", model_id), owner=owner)


def list_model_files(model: ModelRecord) -> list[str]:
    """The downloadable files the model's card lists, plus the card itself, in a fixed order."""
    present = set(ModelCard.from_dict(model.card).files) | {"model.json"}
    return [name for name in MODEL_FILES if name in present]


def get_model_file(ctx: AppContext, *, owner: str, model_id: str, name: str) -> ModelFile:
    """A file of the model's bundle by its name in `MODEL_FILES`.

    Raises:
        NotFound: the model is not the owner's, the name is not a bundle file, or the bundle
            lacks it (reports are missing when they could not be written).
    """
    model = get_model(ctx, owner=owner, model_id=model_id)
    if name not in MODEL_FILES:
        raise NotFound(
            f'Model files are {", ".join(MODEL_FILES)}; there is no file "{_shown(name)}"',
            details={"files": list(MODEL_FILES)},
        )
    key = keys.in_prefix(model.artifact_prefix, name)
    try:
        size = ctx.artifacts.size(key)
    except NotFound:
        raise NotFound(
            f'Model "{model.id}" has no {name}'
            + (" (its reports could not be written)" if name.endswith(".html") else ""),
            details={"files": list_model_files(model)},
        ) from None
    return ModelFile(
        model_id=model.id,
        name=name,
        key=key,
        size=size,
        local_path=ctx.artifacts.local_path_hint(key),
    )


DOWNLOAD_LINK_S = 300
"""How long a direct download link lives: long enough to start the download, no longer."""


def download_link(ctx: AppContext, *, file: ModelFile) -> str | None:
    """A short-lived link that downloads `file` straight from the artifact store, or None
    when the file is served through the server: it is small (under
    TABPILOT_DOWNLOAD_LINK_MB), a report (served with its sandbox), or the store makes no
    links (local files)."""
    threshold = ctx.settings.download_link_mb * 1024 * 1024
    if not threshold or file.size < threshold or file.name.endswith(".html"):
        return None
    return ctx.artifacts.presigned_url(file.key, expires=DOWNLOAD_LINK_S)


def open_model_file(ctx: AppContext, *, file: ModelFile) -> BinaryIO:
    """A binary stream of the file; close it."""
    return ctx.artifacts.open_read(file.key)


def deploy_model(ctx: AppContext, *, owner: str, model_id: str) -> tuple[ModelRecord, str]:
    """Mint a prediction-only key for the model; returns the record and the key.

    The key is returned only here. Deploying a deployed model replaces its key.
    """
    get_model(ctx, owner=owner, model_id=model_id)
    key = DEPLOY_KEY_PREFIX + secrets.token_urlsafe(32)
    record = ctx.metadata.update_model(model_id, owner=owner, deploy_key_hash=hash_deploy_key(key))
    return record, key


def undeploy_model(ctx: AppContext, *, owner: str, model_id: str) -> ModelRecord:
    """Revoke the model's deploy key (nothing changes if it has none)."""
    return ctx.metadata.update_model(model_id, owner=owner, deploy_key_hash=None)


def hash_deploy_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_deploy_key(token: str) -> bool:
    """Whether a token has the form of a deploy key (it may still be wrong)."""
    return token.startswith(DEPLOY_KEY_PREFIX)


def find_model_by_deploy_key(ctx: AppContext, *, key: str) -> ModelRecord | None:
    """The model a deploy key was minted for, or None if the key is unknown or revoked.

    Read through the store's `VersionedCache` (predictions ask on every request): a revoked
    or replaced key stops working at the next request, whichever process revoked it.
    """
    if not is_deploy_key(key):
        return None
    key_hash = hash_deploy_key(key)
    return cache_for(ctx.metadata, PREDICTION_RECORDS).get(
        ("deploy", key_hash), lambda: ctx.metadata.find_model_by_deploy_key_hash(key_hash)
    )


def model_for_prediction(ctx: AppContext, *, owner: str, model_id: str) -> ModelRecord:
    """`get_model` for predictions, which ask on every request: the record is reused while
    the metadata store is unchanged (`tabpilot.metadata.cache`), so a deleted model or any
    other change takes effect at the next request, whichever process made it.

    Raises:
        NotFound: missing or owned by someone else.
    """
    check_id("Model", model_id)
    record = cache_for(ctx.metadata, PREDICTION_RECORDS).get(
        ("owner", model_id, owner), lambda: ctx.metadata.find_model(model_id, owner=owner)
    )
    if record is None:
        raise not_found("Model", model_id)
    return record


def model_for_deploy_key(ctx: AppContext, *, key: str, model_id: str) -> ModelRecord:
    """The model a deploy key may predict with, which must be `model_id`.

    Raises:
        Unauthenticated: the key is unknown: mistyped, revoked, or replaced by a newer one.
        Forbidden: the key belongs to another model. Said whether or not `model_id` exists,
            so a key reveals nothing about other models.
    """
    model = find_model_by_deploy_key(ctx, key=key)
    if model is None:
        raise Unauthenticated(
            "This deploy key is not valid: it was mistyped, revoked (undeploy) or replaced "
            "(deploy again mints a new key). Ask the model's owner for the current key."
        )
    if model.id != model_id:
        raise Forbidden("This deploy key only predicts with the model it was minted for")
    return model


def _shown(name: str) -> str:
    """A requested file name, made safe and short enough to repeat in a message."""
    text = "".join(ch if ch.isprintable() else "?" for ch in name)
    return text if len(text) <= 60 else text[:57] + "..."
