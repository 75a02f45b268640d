"""The model bundle: model.onnx, model.pkl and model.json (the model card).

`model.onnx` holds preprocessing and model in one graph whose inputs are the model input
columns (see `inputs.py`): one [N, 1] tensor each, float32 for numbers (NaN = missing) and
string for categories ("" = missing). `model.pkl` is the same fitted pipeline wrapped in a
`TabpilotModel`; unpickling runs code, so it is for trusted use only.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import pickle
import platform
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import tabpilot
from tabpilot.engine.card import (
    FORMAT_VERSION,
    CardBudget,
    CardChosen,
    CardFeature,
    CardInput,
    CardMetric,
    CardOptions,
    CardRows,
    CardSplit,
    ModelCard,
)
from tabpilot.engine.data.inputs import input_columns
from tabpilot.engine.serialize import to_jsonable
from tabpilot.engine.training.model import TabpilotModel
from tabpilot.engine.training.onnx_converters import register as register_converters
from tabpilot.engine.training.train import TrainResult

MAX_ALLOWED_VALUES = 100


def build_onnx(model: TabpilotModel) -> tuple[bytes, list[dict[str, str]]]:
    """The ONNX graph of `model`, and its inputs (graph name, model input column, type)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_converters()
    columns = input_columns(model.features)
    initial_types = [
        (name, FloatTensorType([None, 1]) if kind == "numeric" else StringTensorType([None, 1]))
        for name, kind in columns
    ]
    from sklearn.feature_extraction.text import CountVectorizer

    from tabpilot.engine.training.preprocess import TOKEN_PATTERN

    options: dict[Any, Any] = {CountVectorizer: {"tokenexp": TOKEN_PATTERN}}
    if model.classes is not None:
        options[id(model.pipeline.steps[-1][1])] = {"zipmap": False}
    onx = convert_sklearn(
        model.pipeline,
        initial_types=initial_types,
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
        # skl2onnx's optimisation only removes Identity nodes, by copying the whole graph:
        # on a blend of large tree models that copy was the run's peak memory (+180 MB on
        # bike_sharing_hourly). ONNX Runtime removes those nodes itself when it loads a model.
        model_optim=False,
    )
    onx.doc_string = f"Tabpilot {tabpilot.__version__} model for target {model.target!r}"
    # skl2onnx makes names safe for ONNX; the graph keeps our order, so map by position.
    graph_names = [i.name for i in onx.graph.input]
    inputs = [
        {"name": g, "column": name, "type": "float32" if kind == "numeric" else "string"}
        for g, (name, kind) in zip(graph_names, columns, strict=True)
    ]
    return onx.SerializeToString(), inputs


def build_feature_card(result: TrainResult) -> list[CardFeature]:
    """Features with their types, allowed values and ranges, as seen in training."""
    out = []
    for spec in result.plan.features:
        col = result.profile.column(spec.name)
        parts: dict[str, Any] = {}
        if spec.kind == "datetime":
            parts["has_time"] = spec.has_time
            parts["inputs"] = [c for c, _ in spec.input_columns()]
        if spec.kind in ("numeric", "datetime") and col.stats:
            parts["min"] = col.stats.get("min")
            parts["max"] = col.stats.get("max")
        if spec.kind == "text":
            parts["note"] = "free text: the presence of its most frequent words is used"
        if spec.kind in ("categorical", "boolean"):
            parts["values"] = [v for v, _ in col.top_values][:MAX_ALLOWED_VALUES]
            if spec.kind == "categorical" and col.n_distinct > len(col.top_values):
                parts["values_note"] = (
                    f"the {len(col.top_values)} most frequent of {col.n_distinct} values; "
                    "any other value (or a rare one) is treated as 'other'"
                )
        out.append(
            CardFeature(
                name=spec.name,
                kind=spec.kind,
                profile_kind=str(col.kind),
                dtype=col.dtype,
                missing_fraction=round(col.missing_fraction, 6),
                n_distinct=col.n_distinct,
                details=parts,
            )
        )
    return out


def build_model_card(
    result: TrainResult,
    *,
    inputs: list[dict[str, str]],
    files: dict[str, dict[str, Any]],
    elapsed: float | None = None,
    source: str | None = None,
) -> ModelCard:
    """Everything known about the model (its JSON is `to_dict()`)."""
    est = result.model.pipeline.named_steps["model"]
    spec = result.spec
    return ModelCard(
        format_version=FORMAT_VERSION,
        tabpilot_version=tabpilot.__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        target=spec.target,
        problem_type=str(result.problem.problem_type),
        problem_reason=result.problem.reason,
        classes=result.classes,
        metric=CardMetric(
            name=result.metric.name,
            label=result.metric.label,
            greater_is_better=result.metric.greater_is_better,
        ),
        features=build_feature_card(result),
        inputs=[CardInput(**i) for i in inputs],
        dropped_columns=[d.to_dict() for d in result.plan.dropped],
        warnings=[w.to_dict() for w in result.plan.warnings],
        rows=CardRows(
            total=result.profile.n_rows,
            used=result.n_rows,
            train=result.n_train,
            test=result.n_test,
            valid=result.n_valid,
            removed=result.rows_removed,
        ),
        split=CardSplit(
            test_size=spec.test_size, stratified=result.classes is not None, seed=spec.seed
        ),
        metrics={"holdout": result.holdout_metrics, "baseline": result.baseline_metrics},
        chosen=CardChosen(name=result.chosen, description=result.chosen_description),
        estimator={
            "class": f"{type(est).__module__}.{type(est).__name__}",
            "params": result.estimator_params,
        },
        decisions=result.decisions,
        leaderboard=result.leaderboard,
        feature_importance=[i.to_dict() for i in result.importance],
        importance_note=result.importance_note,
        budget=CardBudget(
            seconds=result.budget,
            reason=result.budget_reason,
            elapsed=None if elapsed is None else round(elapsed, 2),
        ),
        timings=result.timings,
        evaluation=result.evaluation,
        refit_on_all_rows=result.refit_on_all_rows,
        evaluation_method=result.provenance,
        options=CardOptions(
            metric=spec.metric,
            problem_type=spec.problem_type,
            time_budget=spec.time_budget,
            include=list(spec.include),
            exclude=list(spec.exclude),
            estimators=list(spec.estimators or ()),
            seed=spec.seed,
        ),
        versions=library_versions(),
        files=files,
    )


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "tabpilot": tabpilot.__version__}
    for pkg in (
        "flaml",
        "scikit-learn",
        "lightgbm",
        "xgboost",
        "skl2onnx",
        "onnxmltools",
        "onnxruntime",
        "numpy",
        "pandas",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def file_entry(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write `data` (bytes, or a function that writes to the file) via a temporary file and a
    rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the system.

    The ONNX conversion of a large blend is a run's peak memory (several copies of every tree
    node while the graph is assembled). Freed memory that glibc keeps for reuse still counts
    as the process's; giving it back first lowered bike_sharing_hourly's peak by some 80 MB.
    Elsewhere than glibc there is no such call, and nothing is done.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def write_bundle(
    result: TrainResult,
    out_dir: Path,
    *,
    elapsed: float | None = None,
    source: str | None = None,
    extra_files: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write model.onnx, model.pkl and model.json into `out_dir`; return their paths.

    `extra_files` names files already in `out_dir` (the reports) whose sha256 the card
    should record.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"model.onnx": out_dir / "model.onnx", "model.pkl": out_dir / "model.pkl"}
    # The pickle first and streamed: its transient copies of the boosters are gone, and
    # handed back, before the conversion (the larger cost) starts.
    write_atomic(paths["model.pkl"], lambda fh: pickle.dump(result.model, fh, protocol=5))
    release_free_memory()
    onnx_bytes, inputs = build_onnx(result.model)
    write_atomic(paths["model.onnx"], onnx_bytes)
    del onnx_bytes
    for name in extra_files:
        if (out_dir / name).exists():
            paths[name] = out_dir / name
    files = {name: file_entry(p) for name, p in paths.items()}
    card = build_model_card(result, inputs=inputs, files=files, elapsed=elapsed, source=source)
    paths["model.json"] = out_dir / "model.json"
    write_atomic(
        paths["model.json"],
        json.dumps(to_jsonable(card.to_dict()), indent=2, allow_nan=False).encode(),
    )
    return paths
