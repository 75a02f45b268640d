"""`tabpilot demo`: train and predict on data we make ourselves.

Uses scikit-learn's bundled breast cancer data (no download), so it works in a fresh clone.
"""

from __future__ import annotations

from pathlib import Path

from tabpilot.cli.display import ProgressView, print_summary, say


def run_demo(*, out: Path, time_budget: float) -> None:
    """Write the demo CSV beside `out`, train a model into `out`, predict its first rows."""
    from sklearn.datasets import load_breast_cancer

    from tabpilot.engine.serving.predict import OnnxPredictor
    from tabpilot.engine.spec import TrainRequest, TrainSpec
    from tabpilot.engine.training.run import run_training

    out.mkdir(parents=True, exist_ok=True)
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    csv_path = out.parent / "demo-breast-cancer.csv"
    frame.to_csv(csv_path, index=False)
    say(
        f"Demo: {len(frame)} rows of scikit-learn's breast cancer data written to {csv_path}; "
        f"training to predict 'diagnosis' for {time_budget:.0f} s."
    )
    with ProgressView() as view:
        outcome = run_training(
            csv_path,
            TrainSpec.from_request(TrainRequest(target="diagnosis", time_budget=time_budget)),
            out_dir=out,
            progress=view.update,
        )
    print_summary(outcome.card, outcome.paths, outcome.elapsed)
    predictor = OnnxPredictor.from_dir(out)
    sample = frame.drop(columns=["diagnosis"]).head(5)
    preds = predictor.predict(sample).to_frame()
    preds.insert(0, "actual", frame["diagnosis"].head(5).to_numpy())
    say("\nPredictions for the first 5 rows (from model.onnx):")
    say(preds.to_string(index=False))
    say(f"\nNext: tabpilot info {out}   |   tabpilot predict {out} -i NEW.csv -o predictions.csv")
