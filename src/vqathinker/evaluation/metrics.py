"""Agreement of predicted quality scores with mean opinion scores (MOS), as reported in VQA papers.

Conventions (those of the VIDEVAL and SimpleVQA evaluation code):

- ``srcc`` (Spearman), ``krcc`` (Kendall tau-b) and ``plcc`` (Pearson) on the raw predictions, computed by
  ``scipy.stats``. Ties get average ranks (Spearman) and the tau-b correction (Kendall).
- ``plcc_logistic`` and ``rmse`` after mapping the predictions onto the MOS scale with a logistic fitted by
  unbounded least squares (Levenberg-Marquardt, the method of ``scipy.optimize.curve_fit``). The default is
  the 4-parameter :func:`logistic4` of those projects, started where they start it (``[max(MOS), min(MOS),
  mean(pred), 0.5]``) and from two starts scaled to the data, keeping the best: never worse than their fit.
  ``fit="logistic5"`` uses the 5-parameter :func:`logistic5` (Sheikh, Sabir and Bovik, 2006). See
  :func:`fit_logistic`.
  For a predictor that ranks backwards the fitted curve falls; ``plcc_logistic`` then carries a minus sign,
  like ``srcc``, instead of looking like a good positive correlation.

Scales: the model answers on 1..5 while a benchmark's MOS may be on 0..100. Nothing is rescaled: correlations
do not depend on the scale, and the logistic maps predictions onto the benchmark's MOS scale, so ``rmse`` is
in that benchmark's MOS units.

Undefined values are NaN, never an exception:

- fewer than 2 pairs: every metric is NaN;
- 2 pairs: the correlations are +-1 (scipy's values, meaningless but defined);
- constant predictions or constant MOS: the correlations are NaN (scipy's convention) and no fit is made;
- fewer pairs than :data:`MIN_FIT_POINTS` needs for the chosen form: no fit;
- a logistic fit that fails from every start (where the literature's code stops with an error): the
  fallback is the least-squares line, so ``plcc_logistic`` equals the raw ``plcc`` and ``rmse`` is that of
  the line; ``fit`` says ``"linear"``, ``logistic_fit_ok`` is False and ``logistic_fit_message`` says why.

Invalid input (different lengths, NaN or infinite values) raises ``ValueError``: unparseable predictions are
the caller's to count and drop.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize, special, stats

MIN_FIT_POINTS = {"logistic4": 5, "logistic5": 6}
"""Fewest (prediction, MOS) pairs each logistic is fitted to: one more than its parameters."""
MAX_FUNCTION_EVALUATIONS = {"logistic4": 100_000, "logistic5": 2_000}
"""Function evaluations allowed to each least-squares run. For ``logistic4`` far above what converging fits
need (about 11,000 at most on 300 random benchmarks). ``logistic5`` is not identifiable near a line or a
step (its amplitude and slope can grow without bound together) and then creeps along a valley: stopped at
2,000 its residual is on average within about 0.1 % of where 100,000 evaluations take it (300 random
benchmarks), in a small fraction of the time."""


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|))``: from ``b2`` (x far below ``b3``) to ``b1``.

    The 4-parameter logistic of VIDEVAL and SimpleVQA, written as they write it (so that a fit from their
    starting point takes the same steps); ``|b4|`` is the width, the curve rises when ``b1 > b2``.
    """
    with np.errstate(over="ignore"):  # exp overflows far from the midpoint: the curve is at b2 there
        return b2 + (b1 - b2) / (1 + np.exp(-(np.asarray(x, dtype=float) - b3) / np.abs(b4)))


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """``b1 * (1/2 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5``: a logistic plus a line.

    The 5-parameter logistic of Sheikh, Sabir and Bovik (2006), common in image and video quality papers.
    It contains :func:`logistic4` (``b4 = 0``) and every straight line (``b1 = 0``).
    """
    x = np.asarray(x, dtype=float)
    return b1 * (special.expit(b2 * (x - b3)) - 0.5) + b4 * x + b5


FIT_FORMS: dict[str, Callable[..., np.ndarray]] = {"logistic4": logistic4, "logistic5": logistic5}
"""The logistic forms :func:`compute_metrics` fits, by the name its ``fit`` argument takes."""


def _starts(form: str, x: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """Starting points of the least-squares fit of ``form`` (see :func:`fit_logistic`)."""
    rising = np.corrcoef(x, y)[0, 1] >= 0
    top, bottom = (y.max(), y.min()) if rising else (y.min(), y.max())
    if form == "logistic4":
        conventional = [y.max(), y.min(), x.mean(), 0.5]
        return [conventional, [top, bottom, x.mean(), x.std() / 4], [top, bottom, x.mean(), x.std()]]
    slope, intercept = np.polyfit(x, y, 1)
    starts = [
        [0.0, 1 / x.std(), x.mean(), slope, intercept],
        [top - bottom, 1 / x.std(), x.mean(), 0.0, y.mean()],
    ]
    params, _ = fit_logistic(x, y, "logistic4")
    if params is not None:  # the same curve in logistic5's parameters
        b1, b2, b3, b4 = params
        starts.append([b1 - b2, 1 / b4, b3, 0.0, (b1 + b2) / 2])
    return starts


def _least_squares(form: str, x: np.ndarray, y: np.ndarray, start: list[float]) -> tuple[np.ndarray, float]:
    """One unbounded Levenberg-Marquardt fit of ``form`` from ``start``: (parameters, sum of squared residuals).

    MINPACK's ``lmdif`` through ``scipy.optimize.leastsq``, the routine ``curve_fit`` runs, on the residual
    ``curve_fit`` forms (so the same start takes the same steps). Unlike ``curve_fit`` it keeps the result
    when the evaluation budget runs out: the method only moves to points with a smaller residual, so that
    result is the best point reached.
    """
    function = FIT_FORMS[form]
    with np.errstate(all="ignore"):
        params, _, _, message, status = optimize.leastsq(
            lambda p: function(x, *p) - y,
            np.asarray(start, dtype=float),
            maxfev=MAX_FUNCTION_EVALUATIONS[form],
            full_output=True,
        )
        fitted = function(x, *params)
    if status == 0:
        raise RuntimeError(message)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(fitted))):
        raise RuntimeError(f"non-finite parameters {params.tolist()}")
    if np.ptp(fitted) == 0:
        raise RuntimeError("the fitted curve is flat over the predictions")
    return params, float(np.sum((fitted - y) ** 2))


def _check_form(form: str) -> None:
    if form not in FIT_FORMS:
        raise ValueError(f"unknown fit {form!r}: choose one of {sorted(FIT_FORMS)}")


def _cannot_fit(form: str, x: np.ndarray, y: np.ndarray) -> str:
    """Why ``form`` cannot be fitted to these points at all ("" when it can be tried)."""
    _check_form(form)
    if x.size < MIN_FIT_POINTS[form]:
        return f"{form} fit needs at least {MIN_FIT_POINTS[form]} points, got {x.size}"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return "logistic fit skipped: " + (
            "predictions are constant" if np.ptp(x) == 0 else "MOS is constant"
        )
    return ""


def fit_logistic(
    preds: np.ndarray, mos: np.ndarray, form: str = "logistic4"
) -> tuple[np.ndarray | None, str]:
    """Least-squares fit of the logistic ``form`` (a key of :data:`FIT_FORMS`) mapping ``preds`` onto ``mos``.

    Returns ``(params, "")`` or ``(None, reason)`` when the fit cannot be made or fails from every start.
    The fit is unbounded (as in the literature) and run from several starting points; the one with the
    smallest sum of squared residuals is kept:

    - ``logistic4``: the conventional start of VIDEVAL / SimpleVQA, ``[max(MOS), min(MOS), mean(pred),
      0.5]`` (so the result is never worse than theirs), and two starts scaled to the data, whose plateaus
      follow the sign of the correlation and whose width is ``std(pred) / 4`` or ``std(pred)`` (0.5 suits
      predictions on 1..5 only). The width is returned positive.
    - ``logistic5``: the least-squares line, a logistic spanning the MOS range, and the best ``logistic4``
      fit rewritten in ``logistic5``'s parameters: Levenberg-Marquardt never ends above its start, so the
      5-parameter fit is never worse than the line or the 4-parameter fit. ``b2`` is returned positive.
    """
    x, y = np.asarray(preds, dtype=float), np.asarray(mos, dtype=float)
    reason = _cannot_fit(form, x, y)
    if reason:
        return None, reason
    best, errors = None, []
    for start in _starts(form, x, y):
        try:
            params, sse = _least_squares(form, x, y, start)
        except (RuntimeError, ValueError) as error:
            errors.append(str(error))
            continue
        if best is None or sse < best[1]:
            best = (params, sse)
    if best is None:
        return None, f"{form} fit failed from every start: {'; '.join(errors)}"
    params = best[0].copy()
    if form == "logistic4":
        params[3] = abs(params[3])
    elif params[1] < 0:  # b1 * (expit(b2 u) - 1/2) is unchanged when both change sign
        params[:2] = -params[:2]
    return params, ""


def _correlation(func, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(func(x, y).statistic)


def compute_metrics(
    preds: Sequence[float] | np.ndarray, mos: Sequence[float] | np.ndarray, fit: str = "logistic4"
) -> dict:
    """SRCC, KRCC, PLCC (raw and after the fitted logistic ``fit``) and RMSE (after it) of ``preds`` against ``mos``.

    ``fit`` is ``"logistic4"`` (the convention of VQA papers) or ``"logistic5"``. Returns a dict: ``n``,
    ``srcc``, ``krcc``, ``plcc``, ``plcc_logistic``, ``rmse`` (floats, NaN when undefined, see the module
    docstring), ``fit`` (the mapping behind ``plcc_logistic`` and ``rmse``: the requested logistic,
    ``"linear"`` when it failed, None when no fit was made), ``logistic_fit_ok`` (bool),
    ``logistic_fit_message`` (str, empty when the fit worked) and ``logistic_params`` (the parameters of the
    :data:`FIT_FORMS` function ``fit``, or None).
    """
    _check_form(fit)
    x, y = np.asarray(preds, dtype=float).ravel(), np.asarray(mos, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"preds and mos differ in length: {x.size} vs {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("preds and mos must be finite numbers: drop unparsed predictions before scoring")
    nan = math.nan
    result = {"n": int(x.size), "srcc": nan, "krcc": nan, "plcc": nan, "plcc_logistic": nan, "rmse": nan}
    if x.size < 2:
        return result | {
            "fit": None,
            "logistic_fit_ok": False,
            "logistic_fit_message": f"metrics need at least 2 points, got {x.size}",
            "logistic_params": None,
        }
    result["srcc"] = _correlation(stats.spearmanr, x, y)
    result["krcc"] = _correlation(stats.kendalltau, x, y)
    result["plcc"] = _correlation(stats.pearsonr, x, y)
    params, message = fit_logistic(x, y, fit)
    mapping, fitted = (fit, FIT_FORMS[fit](x, *params)) if params is not None else (None, None)
    if params is None and not _cannot_fit(fit, x, y):  # failed from every start: the documented fallback
        mapping, fitted = "linear", np.polyval(np.polyfit(x, y, 1), x)
        message += "; PLCC and RMSE are those of the least-squares line"
    if fitted is not None:
        direction = 1.0 if np.cov(fitted, x)[0, 1] >= 0 else -1.0
        result["plcc_logistic"] = direction * _correlation(stats.pearsonr, fitted, y)
        result["rmse"] = float(np.sqrt(np.mean((fitted - y) ** 2)))
    return result | {
        "fit": mapping,
        "logistic_fit_ok": params is not None,
        "logistic_fit_message": message,
        "logistic_params": None if params is None else [float(p) for p in params],
    }
