"""The refit on all rows: every part that fits in the time left, heaviest weight first; the
rest kept as trained, and said so."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.blend import Blend, BlendMember
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.clock import Clock
from tabpilot.engine.training.refit import refit_chosen


def _setup(n: int = 200) -> tuple[SimpleNamespace, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=n)
    pre = FunctionTransformer().fit(X)
    # The first 150 rows are the training rows the members learned from.
    split = SimpleNamespace(pre=pre, prepared=X, y=y)
    return split, X


def _blend_candidate(X: np.ndarray, y: np.ndarray, seconds: tuple[float, float]) -> Candidate:
    members = []
    for key, alpha, fit_seconds in (("cheap", 1.0, seconds[0]), ("dear", 10.0, seconds[1])):
        fitted = Ridge(alpha=alpha).fit(X[:150], y[:150])
        members.append(
            BlendMember(
                key=key,
                label=f"{key} ridge",
                estimator=Ridge(alpha=alpha),
                selection=np.zeros(1),
                holdout=np.zeros(1),
                fit_seconds=fit_seconds,
                predict=fitted.predict,
                fitted=fitted,
            )
        )
    blend = Blend(members=members, weights=[1, 3], selection_score=0.0)
    return Candidate(
        "blend",
        blend.describe(),
        Pipeline([("pre", FunctionTransformer()), ("model", None)]),
        0.0,
        blend.fit_seconds,
        np.zeros(1),
        None,
        blend=blend,
        source="blend",
        estimator=Ridge(),
    )


def _refit(chosen: Candidate, split: SimpleNamespace, budget: float) -> tuple[object, list[str]]:
    decisions: list[str] = []
    outcome = refit_chosen(
        chosen,
        split,  # type: ignore[arg-type]
        problem=ProblemType.REGRESSION,
        n_classes=0,
        clock=Clock(started=time.perf_counter(), budget=budget),
        test_size=0.2,
        decisions=decisions,
        emit=lambda *a, **k: None,
    )
    return outcome, decisions


def test_every_member_is_refitted_on_all_rows_when_time_allows() -> None:
    split, X = _setup()
    chosen = _blend_candidate(X, split.y, (0.01, 0.01))
    outcome, decisions = _refit(chosen, split, budget=60)
    assert outcome.refitted == ["dear ridge", "cheap ridge"] and not outcome.kept  # weight order
    model = outcome.pipeline.named_steps["model"]
    assert list(model.weights) == [1, 3]
    for member, before in zip(model.estimators_, chosen.blend.members, strict=True):
        assert member is not before.fitted
        expected = Ridge(alpha=before.estimator.alpha).fit(X, split.y)
        np.testing.assert_allclose(member.coef_, expected.coef_)
    assert not decisions


def test_a_member_whose_refit_does_not_fit_is_kept_as_trained_and_named() -> None:
    split, X = _setup()
    # 60 s budget: the refit may take what is left after 7.2 s for the export; "dear" is
    # expected to take 100 s, "cheap" nothing.
    chosen = _blend_candidate(X, split.y, (0.01, 100.0))
    outcome, decisions = _refit(chosen, split, budget=60)
    assert outcome.refitted == ["cheap ridge"] and outcome.kept == ["dear ridge"]
    model = outcome.pipeline.named_steps["model"]
    assert model.estimators_[1] is chosen.blend.members[1].fitted  # as trained
    assert model.estimators_[0] is not chosen.blend.members[0].fitted
    assert any("dear ridge was not refitted on all rows" in d for d in decisions), decisions
    predictions = outcome.pipeline.predict(X[:5])
    assert predictions.shape == (5,)


def test_nothing_is_refitted_when_no_part_fits() -> None:
    split, X = _setup()
    chosen = _blend_candidate(X, split.y, (100.0, 100.0))
    outcome, decisions = _refit(chosen, split, budget=60)
    assert not outcome.any and outcome.pipeline is chosen.pipeline
    assert len(decisions) == 2


def test_the_refit_leaves_the_export_the_time_to_convert_large_trees() -> None:
    from lightgbm import LGBMRegressor

    from tabpilot.engine.training.sizes import export_seconds, tree_nodes

    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5))
    y = rng.normal(size=3000)
    split = SimpleNamespace(pre=FunctionTransformer().fit(X), prepared=X, y=y)
    params = {"n_estimators": 300, "num_leaves": 127, "min_child_samples": 2, "verbose": -1}
    trees = LGBMRegressor(**params).fit(X, y)
    # Expected to take about 1.7 s to convert (nodes x 1.25 / 70,000 a second).
    assert export_seconds(tree_nodes(trees)) > 1.0

    def chosen(model: object) -> Candidate:
        pipeline = Pipeline([("pre", FunctionTransformer()), ("model", model)])
        # Expected refit: 1.6 s x 1.2 (all rows) x 1.2 + 0.2 = 2.5 s, within the 3 s the refit
        # has in a 4 s run, not within what is left once the conversion's time is given up.
        # `size` as the pool counts it when the model joins (`pool._add_if_exportable`).
        return Candidate(
            "lgbm",
            "big LightGBM",
            pipeline,
            0.0,
            1.6,
            np.zeros(1),
            None,
            estimator=model,
            size=tree_nodes(model),
        )

    outcome, decisions = _refit(chosen(trees), split, budget=4)  # type: ignore[arg-type]
    assert not outcome.any and any("was not refitted" in d for d in decisions), decisions
    # The same refit cost without trees to convert is made.
    outcome, _ = _refit(chosen(Ridge().fit(X, y)), split, budget=4)  # type: ignore[arg-type]
    assert outcome.refitted == ["big LightGBM"]


def test_a_seed_average_that_does_not_fit_whole_is_refitted_with_the_seeds_that_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    from tabpilot.engine.training.bagging import SeedAverageClassifier
    from tabpilot.engine.training.calibrate import with_temperature
    from tabpilot.engine.training.refit import _Part, _plan

    net = SeedAverageClassifier(LogisticRegression(), n_seeds=3)
    for estimator in (net, with_temperature(net, 1.2)):
        whole = _Part("net average", "mlp", estimator, None, cost=9.0, weight=3)
        other = _Part("LightGBM", "lgbm", Ridge(), None, cost=1.0, weight=1)
        # 9 s for three seeds do not fit in 7 s: two seeds (6 s) do, and the next part too.
        planned = _plan([whole, other], 7.0)
        assert [p.key for p in planned] == ["mlp", "lgbm"]
        fewer = planned[0]
        assert fewer.cost == 6.0 and fewer.label == "net average"
        assert fewer.note.startswith("is refitted on all rows with 2 of its 3 seeds")
        seeds = [v for k, v in fewer.estimator.get_params().items() if k.endswith("n_seeds")]
        assert seeds == [2]
        assert net.n_seeds == 3  # the chosen model's own configuration is left as it was
        # Not even one seed (3 s) fits in 2 s: the part is not refitted.
        assert [p.key for p in _plan([whole], 2.0)] == []
    # A model that is no seed average is refitted whole or not at all.
    assert _plan([_Part("ridge", "r", Ridge(), None, cost=9.0)], 7.0) == []
