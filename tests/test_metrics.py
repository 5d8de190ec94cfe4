import numpy as np
import pytest
from gluonts.evaluation import metrics as gm

from autoprune.metrics import (
    QUANTILES,
    forecast_metrics,
    mean_weighted_quantile_loss,
    sample_quantiles,
    seasonal_error,
    seasonal_naive,
)


def test_seasonal_error_by_hand():
    past = np.array([[1.0, 2.0, 4.0, 7.0]])
    # m = 1: |2-1|, |4-2|, |7-4| -> mean 2
    assert seasonal_error(past, 1)[0] == pytest.approx(2.0)
    # m = 2: |4-1|, |7-2| -> mean 4
    assert seasonal_error(past, 2)[0] == pytest.approx(4.0)
    # a season longer than the context falls back to m = 1, as GluonTS does
    assert seasonal_error(past, 24)[0] == pytest.approx(2.0)


def test_point_forecast_metrics_by_hand():
    past = np.array([[0.0, 1.0, 0.0, 1.0]])  # seasonal error with m=1 is 1
    future = np.array([[2.0, 4.0]])
    point = np.array([[[3.0, 3.0]]])  # one sample: median = mean = 3
    m = forecast_metrics(past, future, point, seasonality=1, train_std=2.0)
    assert m["mase"] == pytest.approx(1.0)  # mean |err| = 1, / seasonal error 1
    assert m["mae"] == pytest.approx(0.5)  # 1 / train std 2
    assert m["mse"] == pytest.approx(0.25)  # (1/2)^2
    # every quantile forecast is 3: wQL_q = 2 * (|(3-2)(1-q)| + |(3-4)(0-q)|) / 6 = 1/3
    assert m["crps"] == pytest.approx(1 / 3)


def test_matches_gluonts_functions():
    rng = np.random.default_rng(1)
    past = rng.normal(10, 2, (5, 48))
    future = rng.normal(10, 2, (5, 12))
    samples = rng.normal(10, 2, (5, 200, 12))
    ours = forecast_metrics(past, future, samples, seasonality=24, train_std=1.0)
    mase = np.mean(
        [
            gm.mase(
                future[i],
                np.quantile(samples[i], 0.5, axis=0),
                gm.calculate_seasonal_error(past[i], seasonality=24),
            )
            for i in range(5)
        ]
    )
    assert ours["mase"] == pytest.approx(mase)
    quantiles = {q: np.quantile(samples, q, axis=1) for q in QUANTILES}
    wql = np.mean(
        [
            sum(gm.quantile_loss(future[i], quantiles[q][i], q) for i in range(5))
            / np.sum(np.abs(future))
            for q in QUANTILES
        ]
    )
    assert ours["crps"] == pytest.approx(wql)
    assert mean_weighted_quantile_loss(future, quantiles) == pytest.approx(wql)
    assert ours["mse"] == pytest.approx(
        np.mean([gm.mse(future[i], samples[i].mean(0)) for i in range(5)])
    )


def test_seasonal_naive_repeats_last_season():
    past = np.arange(10, dtype=float)[None, :]
    assert seasonal_naive(past, 5, 3).tolist() == [[7, 8, 9, 7, 8]]
    assert seasonal_naive(past, 2, 1).tolist() == [[9, 9]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_quantiles_are_numpys_bit_for_bit(dtype):
    """The metrics' quantiles come from one sort, not np.quantile: the same values exactly, with
    ties, infinities, NaN and one-sample forecasts, at the levels the metrics use and others."""
    rng = np.random.default_rng(0)
    for samples in (100, 37, 2, 1):
        x = rng.standard_normal((6, samples, 5)).astype(dtype)
        x[0, : samples // 2] = 1.0  # ties
        if samples > 2:
            x[1, 0, 0] = np.nan
            x[2, 1, 1], x[2, 2, 2] = np.inf, -np.inf
        for levels in (QUANTILES, (0.0, 0.5, 1.0), (0.25,)):
            with np.errstate(invalid="ignore"):
                expected = np.quantile(x, levels, axis=1)
                got = sample_quantiles(x, levels)
            assert got.dtype == expected.dtype
            assert np.array_equal(got, expected, equal_nan=True), (samples, levels)
