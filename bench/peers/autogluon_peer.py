"""AutoGluon peer for bench/quality.py (runs in bench/.venv-peers, see bench/setup_peers.sh).

    python autogluon_peer.py train train.csv --target T --task binary --metric roc_auc \
        --time-budget 60 --model-dir DIR
    python autogluon_peer.py predict DIR -i test.csv -o predictions.csv

TabularPredictor with the benchmark's metric and presets="medium_quality"; the problem type
is left to AutoGluon's own detection, as Tabpilot's is to its own.
"""

from __future__ import annotations

import sys

import pandas as pd
from common import Stopwatch, build_parser, write_info, write_predictions

EVAL_METRICS = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "root_mean_squared_error"}


def train(args) -> None:
    from autogluon.tabular import TabularPredictor
    from autogluon.tabular import __version__ as ag_version

    watch = Stopwatch()
    data = pd.read_csv(args.data)
    watch.lap("read_s")
    predictor = TabularPredictor(
        label=args.target, eval_metric=EVAL_METRICS[args.metric], path=str(args.model_dir)
    )
    predictor.fit(data, time_limit=args.time_budget, presets="medium_quality")
    watch.lap("fit_s")
    write_info(
        args.model_dir,
        {
            "tool": "autogluon",
            "versions": {"autogluon.tabular": ag_version, "pandas": pd.__version__},
            "problem_type": predictor.problem_type,
            "best_model": predictor.model_best,
            **watch.laps,
        },
    )


def predict(args) -> None:
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor.load(str(args.model_dir), require_py_version_match=False)
    X = pd.read_csv(args.input)
    probabilities = None
    if predictor.problem_type in ("binary", "multiclass"):
        probabilities = predictor.predict_proba(X, as_multiclass=True)
    write_predictions(args.output, predictions=predictor.predict(X), probabilities=probabilities)


def main() -> int:
    args = build_parser(__doc__.splitlines()[0]).parse_args()
    {"train": train, "predict": predict}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
