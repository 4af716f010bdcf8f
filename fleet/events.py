"""What can happen to a simulated server: operational modes, events and their timing.

The simulator (fleet.simulator.FleetSimulator) moves each server through these modes, a
semi-Markov chain with timed phases; an event starts from normal operation (rates per
profile, fleet.profiles) and its phases follow NEXT_MODE. Incident records the incidents
a run produced: the labels of the training corpus and of the live scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NORMAL, INCIDENT, CRITICAL, OFFLINE, MAINTENANCE, RECOVERY, DRAINED = range(7)  # modes
INCIDENT_KINDS: tuple[str, ...] = ("memory_leak", "disk_fill", "load_ramp", "iowait_storm", "crash")
EVENTS: tuple[str, ...] = (*INCIDENT_KINDS, "maintenance", "drain")
LEAK, FILL, RAMP, STORM = 1, 2, 3, 4  # a server's incident "kind": 1 + EVENTS index, 0 = none
# hours (low, high) of the first phase of each event, and the mode of that phase
EVENT_HOURS = np.array([(3, 12), (2, 10), (1, 4), (2, 6), (0.25, 1), (0.5, 2.5), (2, 8)])
EVENT_MODE = np.array([INCIDENT] * 4 + [OFFLINE, MAINTENANCE, DRAINED])
# the mode after each mode's phase ends; after critical, a memory leak and some load ramps
# restart (offline) instead of recovering in place
NEXT_MODE = np.array([NORMAL, CRITICAL, RECOVERY, RECOVERY, OFFLINE, NORMAL, NORMAL])
# hours (low, high) of the follow-up phases by mode: critical, restart (offline), recovery
PHASE_LOW = np.array([0, 0, 0.25, 0.1, 0, 0.5, 0])
PHASE_HIGH = np.array([0, 0, 0.75, 0.35, 0, 2.0, 0])


@dataclass(frozen=True)
class Incident:
    """One incident: server, kind (INCIDENT_KINDS), start, end (None while still open).

    end is when service is restored (the server enters recovery).
    """

    server: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp | None = None

    def as_dict(self) -> dict[str, str | None]:
        end = None if self.end is None else self.end.isoformat()
        return {
            "server": self.server,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": end,
        }
