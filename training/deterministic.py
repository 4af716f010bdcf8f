"""Metrics forecast by a rule instead of the network, labelled as such.

``uptime_days`` is deterministic until a reboot: it grows by one day every day. Its whole
day count changes once a day, at the time of day the host booted (a reboot resets it to
0 at that time), and the encoder shows when it last changed; so the next increments are
known exactly. A window where it never changes is forecast to stay where it is, which is
the median outcome for any horizon under a day.

The trainer records the rules in the artifact's config ("deterministic_metrics") and
gives those targets no loss weight; the daemon's forecaster applies them and /predict
names them.
"""

from __future__ import annotations

import numpy as np

RULES = {
    "uptime_days": "last value plus one day every 24 h from its last change in the encoder "
    "(exact unless the host reboots); the last value when it did not change",
}


def uptime_forecast(uptime: np.ndarray, horizon: int, steps_per_day: int) -> np.ndarray:
    """(B, E) encoder uptime in whole days -> (B, horizon) forecast in days."""
    uptime = np.asarray(uptime, dtype=np.float32)
    batch, length = uptime.shape
    stepped = np.diff(uptime, axis=1) != 0  # (B, E - 1): a new day (or a reboot) at t + 1
    seen = stepped.any(axis=1)
    changed = length - 1 - np.argmax(stepped[:, ::-1], axis=1)  # first step of the new day
    since = (length - 1) - changed  # steps from that step to the window's last
    h = np.arange(1, horizon + 1)
    days = (since[:, None] + h[None, :]) // steps_per_day
    return uptime[:, -1:] + np.where(seen[:, None], days, 0).astype(np.float32)
