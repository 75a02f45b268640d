"""Raw FLAML peer for bench/quality.py: FLAML's defaults on the raw pandas frames.

    python flaml_peer.py train train.csv --target T --task binary --metric roc_auc \
        --time-budget 60 --model-dir DIR
    python flaml_peer.py predict DIR -i test.csv -o predictions.csv

Nothing is tuned: default metric, default estimator list, FLAML's own handling of text and
missing values. Only the task is given, as "classification" or "regression".
"""

from __future__ import annotations

import pickle
import sys

import pandas as pd
from common import Stopwatch, build_parser, read_info, write_info, write_predictions


def train(args) -> None:
    from flaml import AutoML
    from flaml import __version__ as flaml_version

    watch = Stopwatch()
    data = pd.read_csv(args.data)
    X, y = data.drop(columns=[args.target]), data[args.target]
    watch.lap("read_s")
    automl = AutoML()
    automl.fit(
        X_train=X,
        y_train=y,
        task="regression" if args.task == "regression" else "classification",
        time_budget=args.time_budget,
        seed=args.seed,
    )
    watch.lap("fit_s")
    args.model_dir.mkdir(parents=True, exist_ok=True)
    with (args.model_dir / "model.pkl").open("wb") as f:
        pickle.dump(automl, f)
    watch.lap("save_s")
    write_info(
        args.model_dir,
        {
            "tool": "flaml",
            "task": args.task,
            "versions": {"flaml": flaml_version, "pandas": pd.__version__},
            "best_estimator": automl.best_estimator,
            "best_config": automl.best_config,
            "metric": str(automl._state.metric),
            **watch.laps,
        },
    )


def predict(args) -> None:
    with (args.model_dir / "model.pkl").open("rb") as f:
        automl = pickle.load(f)
    X = pd.read_csv(args.input)
    probabilities = None
    if read_info(args.model_dir)["task"] != "regression":
        probabilities = pd.DataFrame(automl.predict_proba(X), columns=list(automl.classes_))
    write_predictions(args.output, predictions=automl.predict(X), probabilities=probabilities)


def main() -> int:
    args = build_parser(__doc__.splitlines()[0]).parse_args()
    {"train": train, "predict": predict}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
