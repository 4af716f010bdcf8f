"""Uptime is forecast by its rule: one day every 24 h from its last change."""

from __future__ import annotations

import numpy as np

from training.deterministic import RULES, uptime_forecast


def test_next_increment_follows_the_last_one_by_a_day() -> None:
    uptime = np.r_[np.full(200, 10.0), np.full(88, 11.0)][None]  # new day at step 200
    out = uptime_forecast(uptime, horizon=300, steps_per_day=288)
    assert out.shape == (1, 300)
    # the last window step is 87 steps into day 11: day 12 starts 201 steps later
    assert (out[0, :200] == 11.0).all() and (out[0, 200:] == 12.0).all()


def test_a_reboot_restarts_the_day_count_from_its_own_time() -> None:
    uptime = np.r_[np.full(150, 40.0), np.zeros(138)][None]  # rebooted at step 150
    out = uptime_forecast(uptime, horizon=200, steps_per_day=288)
    assert (out[0, :150] == 0.0).all() and (out[0, 150:] == 1.0).all()  # h = 150 + 288 - 287


def test_no_change_in_the_window_is_persistence() -> None:
    flat = np.full((2, 288), 7.0)
    assert (uptime_forecast(flat, horizon=96, steps_per_day=288) == 7.0).all()
    assert "uptime_days" in RULES
