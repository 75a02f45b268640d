"""How large a trained model's trees are, and how large the shipped model may be.

Exporting trees to ONNX costs memory and time in proportion to their nodes: skl2onnx and
onnxmltools build every node's attributes, and every leaf's value per class, as Python
lists. Measured on the 2-core machine: a 300-tree extra-trees regressor of 2 million nodes
peaked at 2.2 GB; a 26-class random forest and extra trees of 385,000 nodes each at 3.5 GB;
letter's blend of two 26-class LightGBMs (580,000 nodes: 2,340 and 12,792 trees) took 8 s and
+450 MB to convert, most of a 60 s run's end reserve. A model's size counts each node plus
half its values (a leaf holds one per class; about half the nodes are leaves).
"""

from __future__ import annotations

from typing import Any

# A single model larger than this is left out of the pool (memory at export).
MAX_TREE_NODES = 600_000
# A blend's members together: ONNX conversion runs at about this many nodes a second on the
# 2-core machine (letter's blend above: 580,000 nodes in 8 s)...
EXPORT_NODES_PER_SECOND = 70_000
# ... and may take this share of the time kept after the refit (importance and the reports
# share the rest), within the memory cap.
EXPORT_SHARE_OF_END, MAX_BLEND_NODES = 0.5, 1_000_000
# The refit on all rows grows boosted trees (more rows: more rounds before the stop). Measured:
# bike_sharing_hourly's blend, 420,000 nodes as chosen, had 484,000 once refitted and took
# 6.5-7.5 s to convert, a 60 s run then ending at 65.6 s.
REFIT_GROWTH = 1.25
# LightGBM caches one histogram per leaf (features x bins x 16 bytes) without limit: on 3,000
# rows of 800 columns one 2 s search trial grew the process by 650 MB. Held to this many MB,
# it recomputes what it cannot keep; on ordinary widths the cache stays far below it.
LIGHTGBM_HISTOGRAM_MB = 200


def export_seconds(size: int) -> float:
    """Expected seconds to convert a model of tree size `size` (as trained, `tree_nodes`) to
    ONNX once the refit has grown it."""
    return size * REFIT_GROWTH / EXPORT_NODES_PER_SECOND


def blend_size_limit(seconds: float) -> int:
    """The most tree size a blend's members may have together (as trained, before the refit
    grows them), for a run that will have `seconds` for the export after the refit (`Clock.
    export_window`; a blend of members over it would not export in time)."""
    nodes = EXPORT_SHARE_OF_END * seconds * EXPORT_NODES_PER_SECOND / REFIT_GROWTH
    return int(min(MAX_BLEND_NODES, max(MAX_TREE_NODES // 4, nodes)))


def tree_nodes(model: Any) -> int:
    """The size of every tree inside a fitted model that the Python converters export:
    scikit-learn forests, LightGBM and XGBoost (CatBoost counts 0, see below), through fold
    averages, pipelines, blends, temperature scaling and early-stopping wrappers (see the
    module docstring)."""
    if hasattr(model, "tree_") and hasattr(model.tree_, "node_count"):
        values_per_leaf = int(model.tree_.value.shape[-1])
        return int(model.tree_.node_count * (1 + values_per_leaf / 2))
    boosted = _booster_nodes(model)
    if boosted is not None:
        return boosted
    total = 0
    for attr in ("estimators_", "estimator_", "steps"):
        inner = getattr(model, attr, None)
        if inner is None:
            continue
        items = inner if isinstance(inner, list) else [inner]
        for item in items:
            part = item[1] if isinstance(item, tuple) else item
            if hasattr(part, "get_params"):
                total += tree_nodes(part)
    return total


def _booster_nodes(model: Any) -> int | None:
    """A fitted boosted model's size (one value per leaf), or None if `model` is not one."""
    name = type(model).__name__
    if name.startswith("LGBM") and hasattr(model, "booster_"):
        booster = model.booster_
        # Each tree's section of the model text states its leaves; a tree of L leaves has
        # 2L - 1 nodes. Reading the text takes a fraction of a second, its parse seconds.
        leaves = sum(
            int(line[len("num_leaves=") :])
            for line in booster.model_to_string().splitlines()
            if line.startswith("num_leaves=")
        )
        return int(2 * leaves - booster.num_trees() + leaves / 2)
    if name.startswith("XGB") and hasattr(model, "_Booster"):
        # One text line per node in XGBoost's dump of each tree.
        nodes = sum(tree.count("\n") for tree in model.get_booster().get_dump())
        return int(nodes * 1.25)
    if name.startswith("CatBoost"):
        # CatBoost converts itself (its own exporter, in C++, `onnx_converters.py`): quick and
        # light however many trees, so it does not count against the Python converters' limit.
        return 0
    return None
