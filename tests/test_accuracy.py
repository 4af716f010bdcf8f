"""Live accuracy tracking (inference/accuracy.py) on hand-made series whose MAE and MASE
are known: a ramp, a level shift that last value predicts perfectly, missing truth."""

from __future__ import annotations

import numpy as np
import pytest

from inference.accuracy import (
    BYTES_PER_SERVER,
    DECAY_STEPS,
    N_SLOTS,
    AccuracyTracker,
    substitute,
)
from inference.predictions import HORIZONS

BASE = 3000  # the step of series index 0 (a multiple of 3: origins are on multiples of 3)
E = 288
TFT, LAST, SEASONAL = 0, 1, 2


def ramp(n: int = 800, slope: float = 0.25) -> np.ndarray:
    """(n, 14): metric 0 rises by slope per step (exact in float16), the rest constant 5."""
    series = np.full((n, 14), 5.0, dtype=np.float32)
    series[:, 0] = slope * np.arange(n)
    return series


def feed(
    tracker: AccuracyTracker,
    series: list[np.ndarray],
    lasts: range | list[int],
    tft_error: list[float],
    observed: np.ndarray | None = None,
) -> None:
    """One update per last step for every server (row i: series[i]); the TFT's forecast is
    the truth plus tft_error[i]."""
    rows = np.arange(len(series))
    for last in lasts:
        i = last - BASE
        values = np.stack([s[i - E + 1 : i + 1] for s in series])
        seen = (
            np.ones(values.shape[:2], bool) if observed is None else observed[:, i - E + 1 : i + 1]
        )
        future = np.stack(
            [s[i + 1 : i + 97] + err for s, err in zip(series, tft_error, strict=True)]
        )
        trajectory = np.repeat(future[..., None], 3, axis=-1)
        tracker.update(rows, np.full(len(rows), last), values, seen, trajectory)


def expected_count(lasts: range, horizon: int) -> int:
    return sum(1 for o in lasts if o % 3 == 0 and o + horizon <= lasts[-1])


def test_a_ramp_gives_the_known_mae_and_mase() -> None:
    tracker, lasts = AccuracyTracker(), range(BASE + E - 1, BASE + E + 200)
    feed(tracker, [ramp(), ramp()], lasts, tft_error=[1.0, -3.0])
    mae, mase, scored = tracker.report(np.array([0, 1]))
    for k, steps in enumerate(HORIZONS.values()):
        assert scored[0, k] == scored[1, k] == expected_count(lasts, steps)
        for server, tft in ((0, 1.0), (1, 3.0)):
            expected = {TFT: tft, LAST: 0.25 * steps, SEASONAL: 0.25 * 288}
            for method, value in expected.items():
                assert mae[server, k, method, 0] == pytest.approx(value, rel=1e-5)
                assert mase[server, k, method, 0] == pytest.approx(value / 72, rel=1e-5)
    # the constant metrics: every method exact, MASE undefined (no seasonal change)
    assert mae[0, :, LAST:, 1:].max() == 0 and np.isnan(mase[0, :, :, 1:]).all()
    assert mae[0, :, TFT, 1:] == pytest.approx(1.0)


def test_a_persistence_perfect_series_scores_last_value_zero() -> None:
    series = np.full((800, 14), 10.0, dtype=np.float32)
    series[E + 20 :] = 20.0  # a level shift a day before scoring starts: then flat
    tracker, lasts = AccuracyTracker(), range(BASE + E + 21, BASE + E + 200)
    feed(tracker, [series], lasts, tft_error=[0.5])
    mae, mase, scored = tracker.report(np.array([0]))
    assert (scored > 0).all()
    assert (mae[0, :, LAST] == 0).all() and (mase[0, :, LAST] == 0).all()
    assert mae[0, :, TFT] == pytest.approx(0.5)
    # seasonal naive still sees the day-old level where t - 288 falls before the shift
    assert (mae[0, :, SEASONAL] > 0).all()


def test_bytes_per_server_stay_under_4_kb() -> None:
    tracker = AccuracyTracker()
    tracker.reserve(1000)
    held = sum(a.nbytes for a in tracker.arrays.values())
    assert BYTES_PER_SERVER <= 4096 and held == 1000 * BYTES_PER_SERVER


def test_forecasts_are_not_scored_before_their_truth_has_closed() -> None:
    tracker = AccuracyTracker()
    lasts = range(BASE + E - 1, BASE + E + 50)  # 51 steps: 8 h (96 steps) not reached yet
    feed(tracker, [ramp()], lasts, tft_error=[1.0])
    _, _, scored = tracker.report(np.array([0]))
    assert scored[0, 0] == expected_count(lasts, 6) > 0 and scored[0, 2] == 0
    # pending: origins 333, 336 (30 min), 327-336 (1 h) and all 17 (8 h)
    assert (tracker.arrays["origin"][0] >= 0).sum() == 2 + 4 + 17 < N_SLOTS


def test_a_target_without_ticks_is_not_scored() -> None:
    tracker, origin = AccuracyTracker(), BASE + 600
    observed = np.ones((1, 800), bool)
    observed[0, origin + 6 - BASE] = False  # the 30-minute target of this origin
    feed(tracker, [ramp()], [origin], [1.0])
    feed(tracker, [ramp()], [origin + 6], [1.0], observed)
    assert tracker.report(np.array([0]))[2][0, 0] == 0  # closed, but no ticks: missing
    feed(tracker, [ramp()], [origin + 12], [1.0])
    mae, _, scored = tracker.report(np.array([0]))
    assert list(scored[0]) == [1, 1, 0]  # 30 min: origin + 6 only; 1 h: origin
    assert mae[0, 0, LAST, 0] == pytest.approx(1.5) and mae[0, 1, LAST, 0] == pytest.approx(3)


def test_steps_closed_together_are_all_scored_and_old_origins_dropped() -> None:
    tracker = AccuracyTracker()
    feed(tracker, [ramp()], [BASE + 300, BASE + 303, BASE + 306], [1.0])
    feed(tracker, [ramp()], [BASE + 320], [1.0])  # three passes' worth of steps at once
    assert list(tracker.report(np.array([0]))[2][0]) == [3, 3, 0]
    feed(tracker, [ramp(1000)], [BASE + 702], [1.0])  # a day later: the origins left the window
    assert list(tracker.report(np.array([0]))[2][0]) == [3, 3, 0]
    assert (tracker.arrays["origin"][0] >= 0).sum() == 3  # only the new origin's slots


def test_old_errors_fade_with_a_24_hour_time_constant() -> None:
    tracker = AccuracyTracker()
    first, second = BASE + 600, BASE + 600 + 288
    feed(tracker, [ramp(1200)], [first, first + 7], [4.0])  # + 7: scores, records nothing
    feed(tracker, [ramp(1200)], [second, second + 7], [0.0])
    weight = np.exp(-288 / DECAY_STEPS)  # the first score is a day older
    mae = tracker.report(np.array([0]))[0]
    assert mae[0, 0, TFT, 0] == pytest.approx(4.0 * weight / (weight + 1), rel=1e-4)


def test_state_round_trip_and_reset() -> None:
    tracker = AccuracyTracker()
    feed(tracker, [ramp(), ramp()], range(BASE + E - 1, BASE + E + 120), [1.0, 2.0])
    restored = AccuracyTracker()
    restored.load(tracker.state(2))
    rows = np.array([0, 1, 5])  # row 5 was never seen: nothing scored
    for before, after in zip(tracker.report(rows), restored.report(rows), strict=True):
        np.testing.assert_array_equal(before, after)
    assert restored.report(rows)[2][2].sum() == 0
    restored.reset()
    assert restored.report(rows)[2].sum() == 0 and (restored.arrays["origin"] == -1).all()


def test_the_fleet_summary_averages_servers_and_metrics() -> None:
    tracker = AccuracyTracker()
    feed(tracker, [ramp(), ramp()], range(BASE + E - 1, BASE + E + 120), [1.0, 30.0])
    summary = tracker.summary(3, tracked=True, chunk=1)  # row 2: nothing scored yet
    short = summary["horizons"]["30m"]
    assert summary["tracked"] and summary["window_h"] == 24
    assert short["servers"] == 2 and short["scored"] == 2 * expected_count(
        range(BASE + E - 1, BASE + E + 120), 6
    )
    # metric 0 is the only one with a MASE: the mean of 1/72 and 30/72
    assert short["mean_mase"]["tft"] == pytest.approx(31 / 144, abs=1e-3)
    assert short["mean_mase"]["seasonal_naive"] == pytest.approx(1.0)
    # of 2 x 14 (server, metric), the TFT beats last value (1.5) on server 0's ramp only
    assert short["tft_better_than_last_value"] == pytest.approx(1 / 28, abs=1e-3)
    assert tracker.summary(0, tracked=False)["horizons"]["8h"]["mean_mase"]["tft"] is None


def test_a_baseline_is_chosen_where_it_was_better_for_a_day() -> None:
    tracker, short = AccuracyTracker(), AccuracyTracker()
    lasts = range(BASE + E - 1, BASE + E + 388)  # 97 origins scored at 8 h
    feed(tracker, [ramp(900), ramp(900)], lasts, tft_error=[1.0, 0.0])
    feed(short, [ramp(900)], lasts[:300], tft_error=[1.0])
    served = tracker.better_methods(np.array([0, 1]))
    # server 0: the flat metrics are exact by last value (seasonal naive ties, comes second);
    # the ramp is the TFT's (3 summed over the horizons against 28.5)
    assert served[0, 0] == 0 and (served[0, 1:] == 1).all()
    assert (served[1] == 0).all()  # a perfect TFT keeps every metric (ties go to the TFT)
    assert (short.better_methods(np.array([0])) == 0).all()  # less than a day scored


def test_substitute_serves_last_value_or_yesterday_in_every_quantile() -> None:
    values = np.arange(288 * 14, dtype=np.float32).reshape(1, 288, 14)
    trajectory = np.full((1, 96, 14, 3), -1.0, dtype=np.float32)
    served = np.zeros((1, 14), np.int8)
    served[0, 1], served[0, 2] = 1, 2
    out = substitute(trajectory, values, served)
    assert (out[0, :, 0] == -1).all() and (out[0, :, 3:] == -1).all()
    assert (out[0, :, 1] == values[0, -1, 1]).all()
    np.testing.assert_array_equal(out[0, :, 2, 1], values[0, :96, 2])  # same time yesterday
    assert (trajectory == -1).all()  # a copy
