"""How strongly two columns of any kind go together: small integer codes for contingency
tables, mutual information and Cramér's V. numpy and pandas only (the API's EDA uses them)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ASSOC_BINS = 10  # quantile bins of a numeric column for contingency tables
ASSOC_TOP = 30  # categories kept for contingency tables (the rest are "other")


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(x: np.ndarray, kx: int, y: np.ndarray, ky: int) -> float:
    """Mutual information (nats) of two code arrays, with the Miller-Madow bias correction,
    so that columns with many categories do not look informative by chance alone."""
    n = len(x)
    if n == 0:
        return 0.0
    joint = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype("float64")
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mi = float((joint[nz] / n * np.log(joint[nz] * n / np.outer(px, py)[nz])).sum())
    bias = (int((px > 0).sum()) - 1) * (int((py > 0).sum()) - 1) / (2 * n)
    return max(mi - bias, 0.0)


def cramers_v(x: np.ndarray, kx: int, y: np.ndarray, ky: int) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013): 0 independent, 1 one determines the other."""
    n = len(x)
    if n < 2:
        return float("nan")
    joint = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype("float64")
    joint = joint[joint.sum(axis=1) > 0][:, joint.sum(axis=0) > 0]
    r, k = joint.shape
    if r < 2 or k < 2:
        return float("nan")
    expected = np.outer(joint.sum(axis=1), joint.sum(axis=0)) / n
    phi2 = float(((joint - expected) ** 2 / expected).sum()) / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc = r - (r - 1) ** 2 / (n - 1)
    kc = k - (k - 1) ** 2 / (n - 1)
    denom = min(kc - 1, rc - 1)
    return math.sqrt(phi2c / denom) if denom > 0 else float("nan")


def is_number(series: pd.Series) -> bool:
    """Numbers, not booleans."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def encode_codes(series: pd.Series, *, bins: int = ASSOC_BINS, top: int = ASSOC_TOP) -> np.ndarray:
    """Small integer codes for a contingency table: numbers in quantile bins, the most common
    categories, the rest as "other", and missing values as a code of their own."""
    if is_number(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if len(np.unique(finite[: 10 * bins])) > bins or len(np.unique(finite)) > bins:
            cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
            if len(cuts) < bins - 1:
                # One value dominates (e.g. mostly zeros): give it a bin of its own and
                # split the other values into quantiles, so their signal is not lost.
                uniq, counts = np.unique(finite, return_counts=True)
                mode = uniq[counts.argmax()]
                rest = finite[finite != mode]
                if len(rest):
                    extra = np.quantile(rest, np.linspace(0, 1, bins)[1:-1])
                    edges = [cuts, extra, [mode, np.nextafter(mode, np.inf)]]
                    cuts = np.unique(np.concatenate(edges))
            codes = np.searchsorted(cuts, values, side="right")
            codes[~np.isfinite(values)] = len(cuts) + 1
            return _compact(codes)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    if len(uniques) > top:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        keep = np.zeros(len(uniques), dtype=bool)
        keep[np.argsort(-counts, kind="stable")[:top]] = True
        other = len(uniques)
        codes = np.where((codes >= 0) & ~keep[np.maximum(codes, 0)], other, codes)
    codes = np.where(codes < 0, len(uniques) + 1, codes)
    return _compact(codes)


def _compact(codes: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int64).ravel()
