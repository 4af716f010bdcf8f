"""Behaviour of real cloud fleets, mixed into the simulated fleet (mix "realistic").

What the trace studies report (Cortez et al., Resource Central, SOSP 2017, on Azure VMs;
the Google Borg trace analyses, Reiss et al. 2012 and Tirmazi et al. 2020; the Alibaba
cluster-trace analyses, Lu et al. 2017 and Guo et al. 2019), and how it is modelled:
- most VMs are near idle (0-5 % CPU) with rare short bursts: idle_vm servers, bursts of
  5-30 minutes, 0.3 to 3 a day, to 20-70 % CPU;
- batch VMs run jobs that start and stop, regimes of hours to days: batch_vm servers at
  93-99 % CPU while a job runs (1 to 96 hours), about 1 % between jobs;
- daily cron jobs at a fixed time of day: every cron_vm server and some others;
- memory flat for days, moving in steps at deploys, half of which restart the service
  (uptime_days drops to 0): idle and cron VMs and a quarter of the other servers; the
  others' memory barely follows the daily load (a quarter of the profile's swing; batch
  VMs' memory moves with their jobs). Real VM memory is a level with noise around it:
  the mean of the last hour forecasts it better than the last value (fleet.metrics);
- network rates in KB/s (0.0002-0.05 MB/s) as well as MB/s;
- metrics a source does not report, a constant zero column: swap (no swap configured),
  java_cpu_pct (no JVM agent), both close-wait counters (no connection collector).
Jobs, bursts, cron runs and deploys start and end on a 5-minute grid from the start of
the simulation and are drawn per server from their own random streams: a 5-second live
fleet and a 5-minute training corpus see the same ones, whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

import data_contract as dc
from fleet import Array
from fleet.metrics import Clock, Modifiers
from fleet.servers import ServerTable

# Behaviours change on the grid of the model's steps (data_contract.STEP_SECONDS), so
# every step sees one value; timelines count time in these grid units.
DAY_UNITS = 86_400 // dc.STEP_SECONDS
NEVER = -(2**40)  # "no restart yet", in grid units
MEM_SWING = 0.25  # share of the profile's daily memory swing kept (not batch VMs)
Draw = Callable[[np.random.Generator, dict[str, Array], int], tuple[Array, dict[str, Array]]]


def _units(hours: Array) -> Array:
    """Hours -> whole grid units, at least one."""
    return np.maximum(1, np.rint(np.asarray(hours) * 3600 / dc.STEP_SECONDS)).astype(np.int64)


class Timeline:
    """Per-server piecewise-constant values on the grid, drawn lazily in fixed batches.

    draw(rng, last, size) gives (n, size) segment lengths (grid units) and values, from the
    values of each server's last segment; batches come from one stream, so the timeline
    does not depend on when it is extended. marks: flag values whose segments' starts are
    carried forward as "since_<flag>" (NEVER before the first flagged segment).
    """

    def __init__(
        self,
        first: dict[str, Array],
        until: Array,
        draw: Draw,
        seed: list[int],
        marks: tuple[str, ...] = (),
    ) -> None:
        """first: (n,) values of the segment that runs from the start to grid unit until."""
        self._draw, self._rng, self._marks = draw, np.random.default_rng(seed), marks
        self.starts = np.zeros((len(until), 1), dtype=np.int64)
        self.values = {k: np.asarray(v)[:, None] for k, v in first.items()}
        self.end = np.maximum(np.asarray(until, dtype=np.int64), 1)
        self._extend()

    def _extend(self, size: int = 32) -> None:
        last = {k: v[:, -1] for k, v in self.values.items()}
        lengths, values = self._draw(self._rng, last, size)
        ends = self.end[:, None] + np.cumsum(lengths, axis=1)
        self.starts = np.concatenate([self.starts, ends - lengths], axis=1)
        self.values = {k: np.concatenate([v, values[k]], axis=1) for k, v in self.values.items()}
        self.end = ends[:, -1]
        for flag in self._marks:
            marked = np.where(self.values[flag] > 0, self.starts, NEVER)
            self.values[f"since_{flag}"] = np.maximum.accumulate(marked, axis=1)

    def at(self, units: Array) -> dict[str, Array]:
        """(K, n) values at grid units (K,) since the start (non-negative)."""
        while units.size and self.end.min() <= units.max():
            self._extend()
        n, width = self.starts.shape
        offset = int(self.end.max()) + 1
        rows = np.arange(n, dtype=np.int64) * offset
        flat = (self.starts + rows[:, None]).ravel()
        pos = np.searchsorted(flat, units[:, None] + rows[None, :], side="right") - 1
        return {k: v.ravel()[pos] for k, v in self.values.items()}


def _alternating(on_hours: Callable, off_hours: Callable, on_value: Callable) -> Draw:
    """Two-state renewal: segments alternate on / off; lengths and on-values drawn per state."""

    def draw(rng: np.random.Generator, last: dict[str, Array], size: int) -> tuple:
        n = len(last["on"])
        on = (last["on"][:, None] == 0) ^ (np.arange(size) % 2 == 1)
        hours = np.where(on, on_hours(rng, (n, size)), off_hours(rng, (n, size)))
        level = np.where(on, on_value(rng, (n, size)), 0.0)
        return _units(hours), {"on": on.astype(np.int8), "level": level}

    return draw


def _jobs_draw() -> Draw:
    """Batch jobs: 1 h to 4 days at 93-99 % CPU; gaps of 15 minutes to 3 days."""
    return _alternating(
        lambda rng, shape: np.clip(rng.lognormal(np.log(8), 1.0, shape), 1, 96),
        lambda rng, shape: np.clip(rng.lognormal(np.log(5), 1.2, shape), 0.25, 72),
        lambda rng, shape: rng.uniform(93, 99, shape),
    )


def _bursts_draw(per_day: Array) -> Draw:
    """Idle VM bursts: 5-30 minutes at 20-70 % CPU, per_day of them a day on average."""
    mean_gap_h = 24 / per_day[:, None]
    return _alternating(
        lambda rng, shape: rng.uniform(1, 6.999, shape).astype(int) * dc.STEP_SECONDS / 3600,
        lambda rng, shape: rng.exponential(1.0, shape) * mean_gap_h,
        lambda rng, shape: rng.uniform(20, 70, shape),
    )


def _deploys_draw(mean_days: Array) -> Draw:
    """Deploys every mean_days on average; memory steps by N(0, 6) points; half restart."""

    def draw(rng: np.random.Generator, last: dict[str, Array], size: int) -> tuple:
        n = len(last["mem"])
        hours = rng.exponential(1.0, (n, size)) * mean_days[:, None] * 24
        steps = rng.normal(0, 6, (n, size))
        mem = np.clip(last["mem"][:, None] + np.cumsum(steps, axis=1), 8, 85)
        restart = (rng.random((n, size)) < 0.5).astype(np.int8)
        return _units(hours), {"mem": mem, "restart": restart}

    return draw


@dataclass(frozen=True)
class Traits:
    """Which behaviours each server has, as (n,) arrays."""

    jobs: Array  # bool: batch job regimes
    bursts: Array  # bool: idle VM bursts
    cron_at: Array  # second of the day its daily cron job starts (-1: none)
    cron_len: Array  # seconds the cron job runs
    cron_cpu: Array  # CPU points the cron job adds
    deploys: Array  # bool: flat memory, steps at deploys


def draw_traits(profiles: Array, rng: np.random.Generator) -> Traits:
    """Behaviours by profile, and for some servers of the other profiles."""
    n = len(profiles)
    vm = np.isin(profiles, ["idle_vm", "cron_vm"])
    batch = profiles == "batch_vm"
    cron = (profiles == "cron_vm") | (~vm & ~batch & (rng.random(n) < 0.15))
    cron_at = rng.integers(0, DAY_UNITS, n) * dc.STEP_SECONDS
    heavy = profiles == "cron_vm"
    return Traits(
        jobs=batch,
        bursts=profiles == "idle_vm",
        cron_at=np.where(cron, cron_at, -1),
        cron_len=rng.integers(2, 7, n) * dc.STEP_SECONDS,  # 10-30 minutes
        cron_cpu=np.where(heavy, rng.uniform(55, 85, n), rng.uniform(15, 35, n)),
        deploys=vm | (~batch & (rng.random(n) < 0.25)),
    )


def adjust_params(p: ServerTable, profiles: Array, rng: np.random.Generator) -> ServerTable:
    """Static traits: idle VMs' CPU spread over 0.8-4 %, KB/s networks, unreported metrics,
    memory that barely follows the daily load (MEM_SWING, except batch VMs' jobs)."""
    n, idle = len(profiles), profiles == "idle_vm"
    cpu = np.where(idle, 10 ** rng.uniform(np.log10(0.8), np.log10(4), n), p.cpu)
    kbps = idle | ((profiles != "batch_vm") & (rng.random(n) < 0.10))
    net_in = np.where(kbps, 10 ** rng.uniform(-3.7, -1.3, n), p.net_in)
    net_out = np.where(kbps, net_in * rng.uniform(0.3, 1.5, n), p.net_out)
    zero = p.zero.copy()
    col = {c: i for i, c in enumerate(dc.METRIC_COLUMNS)}
    zero[:, col["swap_used_pct"]] = rng.random(n) < 0.35
    no_jvm = np.isin(profiles, ["database", "generic", "web_api"]) & (rng.random(n) < 0.5)
    zero[:, col["java_cpu_pct"]] = no_jvm
    unreported = rng.random(n) < 0.20
    zero[:, col["back_close_wait"]] = zero[:, col["front_close_wait"]] = unreported
    noise = np.where(idle, 0.08 * cpu, p.noise)
    swing = np.where(profiles == "batch_vm", p.mem_swing, MEM_SWING * p.mem_swing)
    return replace(
        p, cpu=cpu, net_in=net_in, net_out=net_out, zero=zero, noise=noise, mem_swing=swing
    )


class FleetBehaviours:
    """The realistic mix's behaviours of one fleet: static traits and time-varying ones."""

    def __init__(self, profiles: list[str], params: ServerTable, seed: int, start_ns: int):
        names, rng = np.array(profiles), np.random.default_rng([seed, 3])
        self.traits = draw_traits(names, rng)
        self.params = adjust_params(params, names, rng)
        self.start_ns, n = start_ns, len(names)
        on = (rng.random(n) < 0.5).astype(np.int8)  # a job runs at the start
        jobs = {"on": on, "level": on * rng.uniform(93, 99, n)}
        self.jobs = Timeline(jobs, _units(rng.uniform(0, 24, n)), _jobs_draw(), [seed, 4])
        per_day = rng.lognormal(0, 0.7, n).clip(0.3, 3)
        quiet = {"on": np.zeros(n, np.int8), "level": np.zeros(n)}
        until = _units(rng.exponential(24 / per_day))
        self.bursts = Timeline(quiet, until, _bursts_draw(per_day), [seed, 5])
        mean_days = rng.uniform(2, 7, n)
        first = {"mem": np.clip(params.mem, 8, 85), "restart": np.zeros(n, np.int8)}
        until = _units(rng.uniform(0, 24 * mean_days))
        self.deploys = Timeline(first, until, _deploys_draw(mean_days), [seed, 6], ("restart",))

    def modifiers(self, clock: Clock) -> Modifiers:
        """The chunk's activity multiplier and additions, memory levels and restarts."""
        t, p = self.traits, self.params
        seconds = (clock.ns - self.start_ns) // 10**9
        units = seconds // dc.STEP_SECONDS
        jobs, bursts, deploys = self.jobs.at(units), self.bursts.at(units), self.deploys.at(units)
        mult = np.where(t.jobs, jobs["level"] + (1 - jobs["on"]) * 1.2, p.cpu) / p.cpu
        cpu_add = np.where(t.bursts, bursts["level"], 0.0) + self._cron(clock) * t.cron_cpu
        since = deploys["since_restart"]
        restart_h = (seconds[:, None] - since * dc.STEP_SECONDS) / 3600
        restart_h = np.where(t.deploys & (since > NEVER), restart_h, np.inf)
        mem = np.where(t.deploys, deploys["mem"], np.nan)
        return Modifiers(mult, cpu_add, mem, restart_h)

    def _cron(self, clock: Clock) -> Array:
        """(K, n) whether each server's daily cron job is running."""
        second_of_day = (clock.ns // 10**9) % 86_400
        into = (second_of_day[:, None] - self.traits.cron_at) % 86_400
        return (self.traits.cron_at >= 0) & (into < self.traits.cron_len)
