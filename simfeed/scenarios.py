"""Scenarios: which incidents the live fleet is pushed into, switchable at runtime.

- healthy: no forced incidents; the fleet runs at its natural incident rates.
- degrading: slow incidents (memory leak; disk fill on databases and ETL) that build up
  over DEGRADING_HOURS, then run their natural course (critical, then restart/recovery).
- critical: fast incidents (CRITICAL_RAMP_HOURS) that reach critical and are held there.
- cascade: a database gets an iowait storm, held critical; CASCADE_DELAY_HOURS later the
  servers that depend on it (web/API and conductor servers, assigned to the databases in
  turn) ramp up under load the same way, held critical.

A switch replaces the current scenario: servers it affected recover smoothly from where
they are (FleetSimulator.release), pending cascade steps are cancelled, and the new
scenario's incidents start at the next simulated step. Default servers: the first server
of each of DEFAULT_PROFILES (three), or the first database for cascade.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fleet.simulator import FleetSimulator
from simfeed.settings import Scenario

logger = logging.getLogger(__name__)

SCENARIOS: tuple[str, ...] = ("healthy", "degrading", "critical", "cascade")
DEGRADING_HOURS = 6.0
CRITICAL_RAMP_HOURS = 0.5
CASCADE_DELAY_HOURS = 0.5
DEFAULT_PROFILES: tuple[str, ...] = ("database", "ml_compute", "web_api")
DEPENDENT_PROFILES: tuple[str, ...] = ("web_api", "conductor")
SLOW_KIND = {"database": "disk_fill", "etl_ingest": "disk_fill"}  # others: memory_leak
FAST_KIND = {
    "database": "iowait_storm",
    "web_api": "load_ramp",
    "conductor": "load_ramp",
    "generic": "load_ramp",
}  # others (ml_compute, etl_ingest, risk_analytics): memory_leak


class ScenarioError(ValueError):
    """A scenario request that cannot apply to this fleet (unknown server, no database)."""


@dataclass(frozen=True)
class Action:
    """A forced incident due at simulated step `step`."""

    step: int
    server: str
    kind: str
    hours: float
    hold: bool


def dependents(servers: dict[str, str], database: str) -> list[str]:
    """Servers that depend on database: DEPENDENT_PROFILES servers, dealt to the
    databases in turn (sorted by name), so each database has its own share."""
    databases = sorted(s for s, p in servers.items() if p == "database")
    users = sorted(s for s, p in servers.items() if p in DEPENDENT_PROFILES)
    k = databases.index(database)
    return [s for i, s in enumerate(users) if i % len(databases) == k]


def default_servers(scenario: str, servers: dict[str, str]) -> list[str]:
    """The servers a scenario affects when the request names none."""
    if scenario == "healthy":
        return []
    wanted = ("database",) if scenario == "cascade" else DEFAULT_PROFILES
    chosen = [next((s for s, p in servers.items() if p == w), None) for w in wanted]
    return [s for s in chosen if s is not None] or list(servers)[:1]


def check_servers(scenario: str, chosen: list[str], servers: dict[str, str]) -> None:
    """Raise ScenarioError unless chosen servers exist and suit the scenario."""
    unknown = [s for s in chosen if s not in servers]
    if unknown:
        raise ScenarioError(f"unknown server(s): {', '.join(unknown)}")
    if scenario == "healthy" and chosen:
        raise ScenarioError("healthy applies to the whole fleet; give no servers")
    if scenario == "cascade":
        if not chosen:
            raise ScenarioError("cascade needs a database server; this fleet has none")
        wrong = [s for s in chosen if servers[s] != "database"]
        if wrong:
            raise ScenarioError(f"cascade starts at a database server, not {', '.join(wrong)}")


def plan(
    scenario: str, chosen: list[str], servers: dict[str, str], step: int, tick: int
) -> list[Action]:
    """The forced incidents of a scenario on chosen servers, starting at `step`."""
    if scenario == "degrading":
        return [
            Action(step, s, SLOW_KIND.get(servers[s], "memory_leak"), DEGRADING_HOURS, False)
            for s in chosen
        ]
    if scenario == "critical":
        return [_fast(step, s, servers) for s in chosen]
    if scenario == "cascade":
        later = step + int(round(CASCADE_DELAY_HOURS * 3600 / tick))
        follow = [_fast(later, d, servers) for db in chosen for d in dependents(servers, db)]
        return [_fast(step, db, servers) for db in chosen] + follow
    return []


def _fast(step: int, server: str, servers: dict[str, str]) -> Action:
    return Action(
        step, server, FAST_KIND.get(servers[server], "memory_leak"), CRITICAL_RAMP_HOURS, True
    )


class ScenarioController:
    """Owns the live FleetSimulator and its scenario; thread-safe.

    The streaming loop calls advance(), the control API switch() and state(). advance()
    stops the simulator at each pending action's step to start it there, so a cascade's
    dependents start exactly CASCADE_DELAY_HOURS after their database, whatever the
    chunking (the simulator's output does not depend on how steps are chunked).
    """

    def __init__(self, sim: FleetSimulator) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self.scenario: Scenario = "healthy"
        self.servers: list[str] = []  # as chosen (or defaulted) for the scenario
        self.affected: list[str] = []  # servers with forced incidents, dependents included
        self.since = sim.now
        self._pending: list[Action] = []
        self._forced: dict[str, int] = {}  # server -> index of its forced incident

    def switch(self, scenario: Scenario, servers: list[str] | None = None) -> dict[str, Any]:
        """Replace the scenario (see the module docstring); ScenarioError if it cannot apply."""
        if scenario not in SCENARIOS:
            raise ScenarioError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        fleet = self.sim.servers
        with self._lock:
            chosen = default_servers(scenario, fleet) if servers is None else servers
            chosen = list(dict.fromkeys(chosen))
            check_servers(scenario, chosen, fleet)
            self._release_all()
            actions = plan(scenario, chosen, fleet, self.sim.step, self.sim.step_seconds)
            self.scenario, self.servers, self.since = scenario, chosen, self.sim.now
            self.affected = list(dict.fromkeys(a.server for a in actions))
            self._pending = sorted(actions, key=lambda a: a.step)
            self._apply_due()
            logger.info(
                "Scenario %s from %s on %s",
                scenario,
                self.since.isoformat(),
                ", ".join(self.affected) or "the whole fleet (natural incident rates)",
            )
            return self._describe()

    def advance(self, n_steps: int) -> pd.DataFrame:
        """Simulate n_steps more ticks, starting due actions on the way; rows as advance()."""
        with self._lock:
            end = self.sim.step + n_steps
            frames = []
            while self._pending and self._pending[0].step < end:
                frames.append(self.sim.advance(self._pending[0].step - self.sim.step))
                self._apply_due()
            frames.append(self.sim.advance(end - self.sim.step))
            frames = [f for f in frames if len(f)] or frames[-1:]
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def state(self) -> dict[str, Any]:
        """The current scenario, its servers, pending actions and the simulated time."""
        with self._lock:
            return self._describe()

    def _apply_due(self) -> None:
        while self._pending and self._pending[0].step <= self.sim.step:
            a = self._pending.pop(0)
            self.sim.force_incident(a.server, a.kind, a.hours, a.hold)
            self._forced[a.server] = len(self.sim.incidents) - 1
            logger.info("Forced %s on %s (%.2f h to critical)", a.kind, a.server, a.hours)

    def _release_all(self) -> None:
        for server, index in self._forced.items():
            if self.sim.incidents[index].end is None and self.sim.release(server):
                logger.info("Released %s: it recovers from here", server)
        self._forced, self._pending = {}, []

    def _at(self, step: int) -> str:
        return (self.sim.start + pd.Timedelta(seconds=step * self.sim.step_seconds)).isoformat()

    def _describe(self) -> dict[str, Any]:
        pending = [
            {"server": a.server, "kind": a.kind, "at": self._at(a.step)} for a in self._pending
        ]
        return {
            "scenario": self.scenario,
            "servers": list(self.servers),
            "affected": list(self.affected),
            "since": self.since.isoformat(),
            "sim_time": self.sim.now.isoformat(),
            "pending": pending,
        }
