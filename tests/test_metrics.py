import math

import numpy as np
import pytest
from scipy import stats

from vqathinker.evaluation.metrics import MIN_FIT_POINTS, compute_metrics, fit_logistic, logistic4


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [None, 1, 0])  # None: no ties; 1, 0: more and more ties
def test_raw_metrics_match_scipy(seed, decimals):
    rng = np.random.default_rng(seed)
    preds = rng.uniform(1, 5, 60)
    mos = 20 * preds + rng.normal(0, 15, 60)
    if decimals is not None:
        preds, mos = preds.round(decimals), mos.round(decimals - 1)
    metrics = compute_metrics(preds.tolist(), mos.tolist())
    assert metrics["n"] == 60
    assert abs(metrics["srcc"] - stats.spearmanr(preds, mos).statistic) < 1e-12
    assert abs(metrics["krcc"] - stats.kendalltau(preds, mos).statistic) < 1e-12
    assert abs(metrics["plcc"] - stats.pearsonr(preds, mos).statistic) < 1e-12
    assert metrics["logistic_fit_ok"], metrics["logistic_fit_message"]
    # the logistic includes near-linear maps, so it fits at least about as well as a straight line
    assert metrics["plcc_logistic"] >= metrics["plcc"] - 1e-3


def test_hand_computed_without_ties():
    # rank differences (-1, 1, -1, 1, 0): SRCC = 1 - 6 * 4 / (5 * 24) = 0.8; 2 of 10 pairs discordant: KRCC = 0.6
    metrics = compute_metrics([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert metrics["srcc"] == pytest.approx(0.8, abs=1e-12)
    assert metrics["krcc"] == pytest.approx(0.6, abs=1e-12)
    assert metrics["plcc"] == pytest.approx(0.8, abs=1e-12)  # both are already ranks


def test_hand_computed_with_ties():
    # preds ranks (1.5, 1.5, 3): SRCC = 1.5 / sqrt(1.5 * 2); tau-b: 2 concordant, 0 discordant, one x tie
    metrics = compute_metrics([1, 1, 2], [1, 2, 3])
    assert metrics["srcc"] == pytest.approx(1.5 / math.sqrt(3.0), abs=1e-12)
    assert metrics["krcc"] == pytest.approx(2 / math.sqrt(2 * 3), abs=1e-12)


def test_logistic_fit_recovers_a_logistic_relation():
    preds = np.linspace(1, 5, 40)
    mos = logistic4(preds, 90.0, 10.0, 3.2, 0.4)
    metrics = compute_metrics(preds, mos)
    assert metrics["logistic_fit_ok"]
    assert metrics["plcc_logistic"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["rmse"] < 1e-4
    assert metrics["plcc"] < 0.99  # the raw relation is not linear
    np.testing.assert_allclose(metrics["logistic_params"], [90.0, 10.0, 3.2, 0.4], rtol=1e-4)


def test_rmse_is_in_mos_units_and_correlations_are_scale_free():
    rng = np.random.default_rng(1)
    preds = rng.uniform(1, 5, 80)
    mos_5 = np.clip(preds + rng.normal(0, 0.5, 80), 1, 5)  # a 1..5 benchmark
    on_5, on_100 = (
        compute_metrics(preds, mos_5),
        compute_metrics(preds, (mos_5 - 1) * 25),
    )  # the same on 0..100
    for key in ("srcc", "krcc", "plcc"):
        assert on_100[key] == pytest.approx(on_5[key], abs=1e-12)
    assert on_100["plcc_logistic"] == pytest.approx(on_5["plcc_logistic"], abs=1e-6)
    assert on_100["rmse"] == pytest.approx(25 * on_5["rmse"], rel=1e-5)


def test_backwards_predictor_gets_negative_plcc_logistic():
    rng = np.random.default_rng(2)
    preds = rng.uniform(1, 5, 50)
    metrics = compute_metrics(preds, 100 - 20 * preds + rng.normal(0, 5, 50))
    assert metrics["srcc"] < -0.8 and metrics["plcc"] < -0.8
    assert metrics["logistic_fit_ok"] and metrics["plcc_logistic"] < -0.8
    assert metrics["logistic_params"][0] < metrics["logistic_params"][1]  # falling curve


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points_give_nan(n):
    metrics = compute_metrics([3.0] * n, [4.0] * n)
    assert metrics["n"] == n
    assert all(math.isnan(metrics[k]) for k in ("srcc", "krcc", "plcc", "plcc_logistic", "rmse"))
    assert not metrics["logistic_fit_ok"] and "at least 2" in metrics["logistic_fit_message"]


def test_two_points_have_trivial_correlations_and_no_fit():
    metrics = compute_metrics([1.0, 2.0], [50.0, 10.0])
    assert metrics["srcc"] == pytest.approx(-1.0) and metrics["krcc"] == -1.0 and metrics["plcc"] == -1.0
    assert (
        not metrics["logistic_fit_ok"] and str(MIN_FIT_POINTS["logistic4"]) in metrics["logistic_fit_message"]
    )
    assert math.isnan(metrics["plcc_logistic"]) and math.isnan(metrics["rmse"])


def test_constant_predictions_give_nan_and_say_so():
    metrics = compute_metrics([3.0] * 10, np.arange(10.0))
    assert all(math.isnan(metrics[k]) for k in ("srcc", "krcc", "plcc", "plcc_logistic", "rmse"))
    assert metrics["logistic_fit_message"] == "logistic fit skipped: predictions are constant"
    assert fit_logistic(np.arange(10.0), np.full(10, 2.0)) == (None, "logistic fit skipped: MOS is constant")


def test_invalid_input_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        compute_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="drop unparsed"):
        compute_metrics([1, float("nan"), 3], [1, 2, 3])
