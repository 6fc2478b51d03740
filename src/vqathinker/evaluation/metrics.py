"""Agreement of predicted quality scores with mean opinion scores (MOS), as reported in VQA papers.

Conventions (VIDEVAL / SimpleVQA):

- ``srcc`` (Spearman), ``krcc`` (Kendall tau-b) and ``plcc`` (Pearson) on the raw predictions, computed by
  ``scipy.stats``. Ties get average ranks (Spearman) and the tau-b correction (Kendall).
- ``plcc_logistic`` and ``rmse`` after mapping the predictions onto the MOS scale with the 4-parameter logistic
  :func:`logistic4`, fitted by least squares with ``scipy.optimize.curve_fit``. For a predictor that ranks
  backwards the fitted curve falls; ``plcc_logistic`` then carries a minus sign, like ``srcc``, instead of
  looking like a good positive correlation.

Scales: the model answers on 1..5 while a benchmark's MOS may be on 0..100. Nothing is rescaled: correlations
do not depend on the scale, and the logistic maps predictions onto the benchmark's MOS scale, so ``rmse`` is
in that benchmark's MOS units.

Undefined values are NaN, never an exception:

- fewer than 2 pairs: every metric is NaN;
- 2 pairs: the correlations are +-1 (scipy's values, meaningless but defined);
- constant predictions or constant MOS: the correlations are NaN (scipy's convention) and no fit is made;
- fewer than :data:`MIN_FIT_POINTS` pairs: no fit (it has 4 parameters);
- a fit that fails: ``plcc_logistic`` and ``rmse`` are NaN, ``logistic_fit_ok`` is False and
  ``logistic_fit_message`` says why; the raw ``plcc`` is still reported.

Invalid input (different lengths, NaN or infinite values) raises ``ValueError``: unparseable predictions are
the caller's to count and drop.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats

MIN_FIT_POINTS = 5
"""Fewest (prediction, MOS) pairs the 4-parameter logistic is fitted to."""


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``(b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2``: from ``b2`` (x far below ``b3``) to ``b1``, slope ``1/b4``."""
    return (b1 - b2) * special.expit((np.asarray(x, dtype=float) - b3) / b4) + b2


def fit_logistic(preds: np.ndarray, mos: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Least-squares fit of :func:`logistic4` mapping ``preds`` onto ``mos``.

    Returns ``(params, "")`` or ``(None, reason)`` when the fit cannot be made or fails. The initial guess
    spans the MOS range around the mean prediction (falling when the two are negatively correlated); the
    bounds keep both plateaus within one MOS span of the data, the midpoint within one prediction span of
    the data, and the width positive.
    """
    x, y = np.asarray(preds, dtype=float), np.asarray(mos, dtype=float)
    if x.size < MIN_FIT_POINTS:
        return None, f"logistic fit needs at least {MIN_FIT_POINTS} points, got {x.size}"
    x_span, y_span = np.ptp(x), np.ptp(y)
    if x_span == 0 or y_span == 0:
        return None, "logistic fit skipped: " + (
            "predictions are constant" if x_span == 0 else "MOS is constant"
        )
    top, bottom = (y.max(), y.min()) if np.corrcoef(x, y)[0, 1] >= 0 else (y.min(), y.max())
    lower = [y.min() - y_span, y.min() - y_span, x.min() - x_span, 1e-3 * x_span]
    upper = [y.max() + y_span, y.max() + y_span, x.max() + x_span, 1e2 * x_span]
    guess = np.clip([top, bottom, x.mean(), x.std()], lower, upper)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)  # covariance not needed
            params, _ = optimize.curve_fit(logistic4, x, y, p0=guess, bounds=(lower, upper), maxfev=10_000)
    except (RuntimeError, ValueError) as error:
        return None, f"logistic fit failed: {error}"
    if not np.all(np.isfinite(params)):
        return None, f"logistic fit failed: non-finite parameters {params.tolist()}"
    if np.ptp(logistic4(x, *params)) == 0:
        return None, "logistic fit failed: the fitted curve is flat over the predictions"
    return params, ""


def _correlation(func, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(func(x, y).statistic)


def compute_metrics(preds: Sequence[float] | np.ndarray, mos: Sequence[float] | np.ndarray) -> dict:
    """SRCC, KRCC, PLCC (raw and after the logistic fit) and RMSE (after the fit) of ``preds`` against ``mos``.

    Returns a dict: ``n``, ``srcc``, ``krcc``, ``plcc``, ``plcc_logistic``, ``rmse`` (floats, NaN when
    undefined, see the module docstring), ``logistic_fit_ok`` (bool), ``logistic_fit_message`` (str, empty
    when the fit worked) and ``logistic_params`` (``[b1, b2, b3, b4]`` of :func:`logistic4`, or None).
    """
    x, y = np.asarray(preds, dtype=float).ravel(), np.asarray(mos, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"preds and mos differ in length: {x.size} vs {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("preds and mos must be finite numbers: drop unparsed predictions before scoring")
    nan = math.nan
    result = {"n": int(x.size), "srcc": nan, "krcc": nan, "plcc": nan, "plcc_logistic": nan, "rmse": nan}
    if x.size < 2:
        return result | {
            "logistic_fit_ok": False,
            "logistic_fit_message": f"metrics need at least 2 points, got {x.size}",
            "logistic_params": None,
        }
    result["srcc"] = _correlation(stats.spearmanr, x, y)
    result["krcc"] = _correlation(stats.kendalltau, x, y)
    result["plcc"] = _correlation(stats.pearsonr, x, y)
    params, message = fit_logistic(x, y)
    if params is not None:
        fitted = logistic4(x, *params)
        direction = 1.0 if params[0] >= params[1] else -1.0
        result["plcc_logistic"] = direction * _correlation(stats.pearsonr, fitted, y)
        result["rmse"] = float(np.sqrt(np.mean((fitted - y) ** 2)))
    return result | {
        "logistic_fit_ok": params is not None,
        "logistic_fit_message": message,
        "logistic_params": None if params is None else [float(p) for p in params],
    }
