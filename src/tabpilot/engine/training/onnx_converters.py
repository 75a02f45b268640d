"""skl2onnx converters for Tabpilot's own model steps and for CatBoost, so every model that can
win exports as one ONNX graph (preprocessing included):

- `EarlyStoppedClassifier` / `EarlyStoppedRegressor` (`early_stop.py`): the wrapped model's
  graph at its best iteration; classifiers map the wrapped model's codes back to `classes_`,
  regressors undo the target's standardisation.
- `FoldAverageClassifier` / `FoldAverageRegressor` (`bagging.py`): the fold models' graphs,
  averaged (a fold model's probabilities are spread over every class first).
- `CatBoostClassifier` / `CatBoostRegressor`: CatBoost's own ONNX export takes one numeric
  tensor, so its tree-ensemble node is copied into the graph right after the preprocessor.
- `TemperatureScaled` (`calibrate.py`): the wrapped model, then softmax(log p / T).

`register()` teaches skl2onnx all of them (and LightGBM and XGBoost, whose converters come
from onnxmltools); `export.build_onnx` calls it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

_REGISTERED = False
_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


def _sub_model(model: Any, x: Any, opv: int, *, classifier: bool) -> Any:
    """The ONNX operators of fitted `model` on input `x` (a pipeline step by step)."""
    from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        for _, step in model.steps[:-1]:
            x = OnnxSubEstimator(step, x, op_version=opv)
        model = model.steps[-1][1]
    options = {"zipmap": False} if classifier else None
    return OnnxSubEstimator(model, x, op_version=opv, options=options)


def _int_classes(classes: Any, what: str) -> np.ndarray:
    classes = np.asarray(classes)
    if not np.issubdtype(classes.dtype, np.integer):
        raise NotImplementedError(f"{what}: ONNX export needs integer label codes")
    return classes.astype(np.int64)


def _label_from_proba(proba: Any, classes: np.ndarray, opv: int, output: str) -> Any:
    """classes[argmax(proba, axis=1)]: the label a probability table implies."""
    from skl2onnx.algebra.onnx_ops import OnnxArgMax, OnnxGather

    best = OnnxArgMax(proba, axis=1, keepdims=0, op_version=opv)
    return OnnxGather(classes, best, axis=0, op_version=opv, output_names=[output])


def _convert_temperature_scaled(scope: Any, operator: Any, container: Any) -> None:
    """ONNX for `TemperatureScaled`: the wrapped model's graph, then
    softmax(log(max(p, 1e-12)) / T); the label is the wrapped model's (scaling keeps the order
    of the probabilities)."""
    from skl2onnx.algebra.onnx_ops import OnnxIdentity, OnnxLog, OnnxMax, OnnxMul, OnnxSoftmax

    op = operator.raw_operator
    opv = container.target_opset
    inner = _sub_model(op.estimator_, operator.inputs[0], opv, classifier=True)
    floor = np.array([1e-12], dtype=np.float32)
    log_p = OnnxLog(OnnxMax(inner[1], floor, op_version=opv), op_version=opv)
    scaled = OnnxMul(log_p, np.array([1.0 / op.temperature], dtype=np.float32), op_version=opv)
    proba = OnnxSoftmax(
        scaled, axis=1, op_version=opv, output_names=[operator.outputs[1].full_name]
    )
    label = OnnxIdentity(inner[0], op_version=opv, output_names=[operator.outputs[0].full_name])
    proba.add_to(scope, container)
    label.add_to(scope, container)


def _convert_early_stopped(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxIdentity, OnnxMul
    from sklearn.base import is_classifier

    op = operator.raw_operator
    opv = container.target_opset
    x = operator.inputs[0]
    if is_classifier(op):
        inner = _sub_model(op.estimator_, x, opv, classifier=True)
        inner_classes = np.asarray(op.estimator_.classes_)
        if not np.array_equal(inner_classes, np.arange(len(op.classes_))):
            raise NotImplementedError("the wrapped model must know every class of the wrapper")
        proba = OnnxIdentity(inner[1], op_version=opv, output_names=[operator.outputs[1].full_name])
        classes = _int_classes(op.classes_, "EarlyStoppedClassifier")
        label = _label_from_proba(inner[1], classes, opv, operator.outputs[0].full_name)
        proba.add_to(scope, container)
        label.add_to(scope, container)
        return
    inner = _sub_model(op.estimator_, x, opv, classifier=False)
    scaled = OnnxMul(inner, np.array([op.y_scale_], dtype=np.float32), op_version=opv)
    out = OnnxAdd(
        scaled,
        np.array([op.y_mean_], dtype=np.float32),
        op_version=opv,
        output_names=[operator.outputs[0].full_name],
    )
    out.add_to(scope, container)


def _convert_fold_average(scope: Any, operator: Any, container: Any) -> None:
    """A fold average (or a seed average) as one graph: the mean of its members' outputs."""
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxIdentity, OnnxMatMul, OnnxMul
    from sklearn.base import is_classifier

    op = operator.raw_operator
    opv = container.target_opset
    x = operator.inputs[0]
    classify = is_classifier(op)
    total = None
    for member in op.estimators_:
        inner = _sub_model(member, x, opv, classifier=classify)
        if classify:
            part = inner[1]
            columns = np.searchsorted(op.classes_, np.asarray(member.classes_))
            if len(columns) != len(op.classes_):
                # A fold model that never saw a class: its columns go to their places.
                place = np.zeros((len(columns), len(op.classes_)), dtype=np.float32)
                place[np.arange(len(columns)), columns] = 1.0
                part = OnnxMatMul(part, place, op_version=opv)
        else:
            part = inner
        total = part if total is None else OnnxAdd(total, part, op_version=opv)
    share = np.array([1.0 / len(op.estimators_)], dtype=np.float32)
    if classify:
        mean = OnnxMul(total, share, op_version=opv)
        proba = OnnxIdentity(mean, op_version=opv, output_names=[operator.outputs[1].full_name])
        classes = _int_classes(op.classes_, "FoldAverageClassifier")
        label = _label_from_proba(mean, classes, opv, operator.outputs[0].full_name)
        proba.add_to(scope, container)
        label.add_to(scope, container)
        return
    mean = OnnxMul(total, share, op_version=opv, output_names=[operator.outputs[0].full_name])
    mean.add_to(scope, container)


def _catboost_tree_node(model: Any) -> Any:
    """CatBoost's own ONNX export of `model`: its one tree-ensemble node."""
    import onnx

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "catboost.onnx")
        model.save_model(path, format="onnx")
        exported = onnx.load(path)
    if exported.graph.initializer:
        raise NotImplementedError("CatBoost's ONNX export holds initializers: not supported")
    trees = [n for n in exported.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(trees) != 1:
        raise NotImplementedError("CatBoost's ONNX export is not one tree ensemble")
    return trees[0]


def _convert_catboost(scope: Any, operator: Any, container: Any) -> None:
    from onnx.helper import get_attribute_value

    model = operator.raw_operator
    node = _catboost_tree_node(model)
    x = operator.inputs[0].full_name
    if node.op_type == "TreeEnsembleClassifier":
        (labels,) = [
            get_attribute_value(a) for a in node.attribute if a.name == "classlabels_int64s"
        ]
        if not np.array_equal(labels, _int_classes(model.classes_, "CatBoostClassifier")):
            raise NotImplementedError("CatBoost's exported classes differ from the model's")
        outputs = [operator.outputs[0].full_name, operator.outputs[1].full_name]
    else:
        outputs = [operator.outputs[0].full_name]
    container.add_node(
        node.op_type,
        [x],
        outputs,
        op_domain="ai.onnx.ml",
        op_version=3,
        name=scope.get_unique_operator_name(node.op_type),
    )
    # The exported attributes are copied as protobuf: read into Python lists first (one
    # object per tree node value), bike_sharing_hourly's CatBoost cost 70 MB more to convert.
    container.nodes[-1].attribute.extend(node.attribute)


def register() -> None:
    """Teach skl2onnx every model step Tabpilot ships (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from catboost import CatBoostClassifier, CatBoostRegressor
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    from tabpilot.engine.training.bagging import (
        FoldAverageClassifier,
        FoldAverageRegressor,
        SeedAverageClassifier,
    )
    from tabpilot.engine.training.calibrate import TemperatureScaled
    from tabpilot.engine.training.early_stop import EarlyStoppedClassifier, EarlyStoppedRegressor

    for model, alias, conv in (
        (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (TemperatureScaled, "TabpilotTemperatureScaled", _convert_temperature_scaled),
        (EarlyStoppedClassifier, "TabpilotEarlyStoppedClassifier", _convert_early_stopped),
        (FoldAverageClassifier, "TabpilotFoldAverageClassifier", _convert_fold_average),
        (SeedAverageClassifier, "TabpilotSeedAverageClassifier", _convert_fold_average),
        (CatBoostClassifier, "TabpilotCatBoostClassifier", _convert_catboost),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_linear_classifier_output_shapes,
            conv,
            options=_CLASSIFIER_OPTIONS,
        )
    for model, alias, conv in (
        (LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm),
        (XGBRegressor, "XGBoostXGBRegressor", convert_xgboost),
        (EarlyStoppedRegressor, "TabpilotEarlyStoppedRegressor", _convert_early_stopped),
        (FoldAverageRegressor, "TabpilotFoldAverageRegressor", _convert_fold_average),
        (CatBoostRegressor, "TabpilotCatBoostRegressor", _convert_catboost),
    ):
        update_registered_converter(
            model, alias, calculate_linear_regressor_output_shapes, conv, options={}
        )
    # skl2onnx gives a model two outputs (label, probabilities) when it is a scikit-learn
    # classifier; CatBoost's has no scikit-learn tags, so it is named here.
    from skl2onnx._parse import sklearn_classifier_list

    if CatBoostClassifier not in sklearn_classifier_list:
        sklearn_classifier_list.append(CatBoostClassifier)
    _REGISTERED = True
