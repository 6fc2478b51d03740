"""The logistic fits behind ``plcc_logistic`` / ``rmse``: never worse than the VQA literature's fit, the
5-parameter option, and the fallback when every start fails."""

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, special, stats

from vqathinker.evaluation import metrics, report
from vqathinker.evaluation.metrics import (
    MIN_FIT_POINTS,
    compute_metrics,
    fit_logistic,
    logistic4,
    logistic5,
)

# Falling, noisy, 10 videos: the conventional start (a rising curve) stalls far from the best fit.
STALLING_PREDS = [2.68, 1.19, 4.61, 2.87, 4.31, 4.85, 1.08, 2.82, 3.78, 4.15]
STALLING_MOS = [54.4, 48.1, -43.3, 21.1, 7.1, 9.9, 37.6, 44.3, 49.4, 10.9]


def literature_logistic(x, b1, b2, b3, b4):
    """The 4-parameter logistic as the VIDEVAL / SimpleVQA evaluation code writes it."""
    return b2 + np.divide(b1 - b2, 1 + np.exp(np.negative(np.divide(x - b3, np.abs(b4)))))


def conventional_fit(x, y):
    """Their fit: curve_fit from [max(MOS), min(MOS), mean(pred), 0.5], unbounded, maxfev 1e8."""
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)  # the covariance is not used
        params, _ = optimize.curve_fit(
            literature_logistic, x, y, p0=[y.max(), y.min(), x.mean(), 0.5], maxfev=100_000_000
        )
        return literature_logistic(x, *params)


def random_benchmark(seed):
    """Predictions on 1..5 (or 0..100), MOS on 1..5 or 0..100, rising or falling, more or less noisy."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([12, 40, 150]))
    x = rng.uniform(1, 5, n) * (25.0 if seed % 5 == 4 else 1.0)
    shape = [special.expit((x - np.median(x)) / rng.uniform(0.05, 0.5) / np.std(x)), np.sqrt(x), x**2, x]
    y = shape[seed % 4]
    y = (y - y.min()) / np.ptp(y) * rng.choice([4.0, 100.0]) + rng.normal(0, rng.uniform(0.02, 0.4), n) * 25
    return x, (-y if seed % 3 == 0 else y)


def sse(fitted, y):
    return float(np.sum((np.asarray(fitted) - y) ** 2))


@pytest.mark.parametrize("seed", range(12))
def test_logistic4_is_never_worse_than_the_conventional_fit(seed):
    x, y = random_benchmark(seed)
    params, message = fit_logistic(x, y)
    assert params is not None, message
    conventional = conventional_fit(x, y)
    ours = logistic4(x, *params)
    assert sse(ours, y) <= sse(conventional, y) * (1 + 1e-12)
    plcc = compute_metrics(x, y)["plcc_logistic"]
    assert abs(plcc) >= abs(stats.pearsonr(conventional, y).statistic) - 1e-9
    assert math.copysign(1, plcc) == math.copysign(1, stats.pearsonr(x, y).statistic)
    assert params[3] > 0  # the width is returned positive


def test_logistic4_escapes_where_the_conventional_start_stalls():
    x, y = np.array(STALLING_PREDS), np.array(STALLING_MOS)
    conventional = conventional_fit(x, y)
    metrics = compute_metrics(x, y)
    assert metrics["fit"] == "logistic4" and metrics["logistic_fit_ok"]
    ours = logistic4(x, *metrics["logistic_params"])
    assert sse(ours, y) < 0.5 * sse(conventional, y)
    assert abs(stats.pearsonr(conventional, y).statistic) < 0.4  # worse than the raw PLCC (-0.65)
    assert metrics["plcc"] == pytest.approx(-0.6531, abs=1e-4)
    assert metrics["plcc_logistic"] < -0.8  # falling curve, negative sign
    assert metrics["logistic_params"][0] < metrics["logistic_params"][1]


def test_logistic5_recovers_a_five_parameter_relation():
    x = np.linspace(1, 5, 60)
    truth = [40.0, 2.5, 3.1, 6.0, 30.0]
    metrics = compute_metrics(x, logistic5(x, *truth), fit="logistic5")
    assert metrics["fit"] == "logistic5" and metrics["logistic_fit_ok"], metrics["logistic_fit_message"]
    assert metrics["rmse"] < 1e-5 and metrics["plcc_logistic"] == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(metrics["logistic_params"], truth, rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_logistic5_is_never_worse_than_logistic4_or_a_line(seed):
    x, y = random_benchmark(seed)
    four, _ = fit_logistic(x, y)
    five, message = fit_logistic(x, y, "logistic5")
    assert five is not None, message
    assert five[1] > 0  # canonical sign of the slope parameter
    line = np.polyval(np.polyfit(x, y, 1), x)
    assert sse(logistic5(x, *five), y) <= min(sse(logistic4(x, *four), y), sse(line, y)) * (1 + 1e-9)


def test_logistic5_needs_six_points_and_unknown_forms_are_refused():
    metrics = compute_metrics([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], fit="logistic5")
    assert metrics["fit"] is None and not metrics["logistic_fit_ok"]
    assert f"at least {MIN_FIT_POINTS['logistic5']} points" in metrics["logistic_fit_message"]
    assert math.isnan(metrics["plcc_logistic"]) and math.isnan(metrics["rmse"])
    with pytest.raises(ValueError, match="unknown fit 'logistic3'"):
        compute_metrics([1, 2, 3], [1, 2, 3], fit="logistic3")


def test_a_fit_that_fails_from_every_start_falls_back_to_the_line(monkeypatch):
    def failing_leastsq(func, x0, **kwargs):
        return np.asarray(x0), None, {}, "improper input", 0

    monkeypatch.setattr(metrics.optimize, "leastsq", failing_leastsq)
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 5, 30)
    y = 100 - 15 * x + rng.normal(0, 6, 30)
    result = compute_metrics(x, y)
    assert result["fit"] == "linear" and not result["logistic_fit_ok"] and result["logistic_params"] is None
    assert "logistic4 fit failed from every start: improper input" in result["logistic_fit_message"]
    assert "least-squares line" in result["logistic_fit_message"]
    assert result["plcc_logistic"] == pytest.approx(result["plcc"], abs=1e-12) and result["plcc"] < -0.8
    slope, intercept = np.polyfit(x, y, 1)
    assert result["rmse"] == pytest.approx(math.sqrt(np.mean((slope * x + intercept - y) ** 2)), rel=1e-12)


def test_the_report_plots_the_fitted_form(tmp_path):
    x, y = random_benchmark(1)
    metrics = compute_metrics(x, y, fit="logistic5")
    path = report.plot_scatter(tmp_path / "five.png", x, y, metrics, "five")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
