"""Shared test fixtures: synthetic frames, the location of ../shared/datasets, real stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.context import AppContext, build_context
from tabpilot.jobs.inline import InlineRunner
from tabpilot.settings import Settings, env_var_name, load_settings

# The AWS emulator's fixtures (moto_endpoint, aws_env, s3_bucket), registered once for every
# test directory so the whole session shares one moto server.
pytest_plugins = ["tests.aws_support"]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path of a shared dataset, or skip the test with the reason."""
    path = SHARED / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets live beside the checkout only")
    return path


def shared_manifest() -> dict:
    path = SHARED / "manifest.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets live beside the checkout only")
    return json.loads(path.read_text())


def make_mixed_frame(n: int = 600, *, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A frame with every column kind, missing values, and a learnable target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 100, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    city = rng.choice([f"city{i:02d}" for i in range(30)], size=n)
    flag = rng.choice([True, False], size=n)
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, size=n), unit="D")
    signal = x1 + (color == "red") * 1.5 + (x2 / 50) + np.where(flag, 0.5, 0)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "x1": x1,
            "x2": np.round(x2, 2),
            "color": color,
            "city": city,
            "flag": flag,
            "signup": dates.strftime("%Y-%m-%d"),
            "constant": "same",
            # Free text, unique per row; the word "premium" carries part of the signal.
            "comment": [
                f"{'premium' if f else 'basic'} {w} order number {i}"
                for i, (f, w) in enumerate(
                    zip(flag, rng.choice(["fast", "slow", "late"], size=n), strict=True)
                )
            ],
        }
    )
    frame.loc[rng.choice(n, n // 10, replace=False), "x1"] = np.nan
    frame.loc[rng.choice(n, n // 10, replace=False), "color"] = None
    if task == "binary":
        frame["label"] = np.where(signal + rng.normal(scale=0.5, size=n) > 1.5, "yes", "no")
    elif task == "multiclass":
        frame["label"] = np.digitize(signal, [0.8, 2.0]) + 1  # integer codes 1, 2, 3
    else:
        frame["label"] = 3 * signal + rng.normal(scale=0.3, size=n)
    return frame


@pytest.fixture(autouse=True)
def answer_to_testserver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's TestClient calls the app by the name "testserver"; the app answers only to
    the names it is allowed (tabpilot.web.security), so tests add that one, as Django's test
    runner adds it to ALLOWED_HOSTS."""
    from tabpilot.web import security

    monkeypatch.setattr(security, "LOOPBACK_HOSTS", (*security.LOOPBACK_HOSTS, "testserver"))


@pytest.fixture
def mixed_binary() -> pd.DataFrame:
    return make_mixed_frame(task="binary")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of real stores under tmp_path, none taken from the environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(env_var_name(name), raising=False)
    return load_settings(data_dir=tmp_path / "data", runner_uri="inline://")


@pytest.fixture
def ctx(settings: Settings) -> Iterator[AppContext]:
    """A context on those stores whose runner runs each submitted job at once, in-process."""
    context = build_context(settings, runner=InlineRunner())
    context.runner.start(context)
    yield context
    context.metadata.close()
