"""Origins for the early-warning estimate: each with the daemon's window, the forecaster's
trajectory, the true values after it, and which risk metrics are real data.

gather() takes every --every steps of a contract frame from a start on, builds each
origin's window as the daemon does (training.scoring: HISTORY_STEPS steps, gaps carried
forward), forecasts the last ENCODER_LENGTH steps with the given forecaster (chunks of
CHUNK origins) and keeps the risk metrics of the window (trouble.evidence.risk_history),
the forecast paths (forecast_paths) and the next 96 steps (NaN where not observed).
Caches are plain .npz arrays (no pickle). fit_sources() is the training corpus of a
forecaster: its generated fleet without its held-out servers, and the training parts of
the real series (training.nab, training.azure), all before its --until. Rows are the
(origin, risk metric) pairs a model is trained on; fit_servers() is the seeded split of
servers (both series of an Azure VM together) into fitting and calibration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc
import risk
from training import scoring
from training.dataset import ENCODER_LENGTH
from trouble import evidence as ev
from trouble import fitting

logger = logging.getLogger(__name__)

EVERY = 6  # steps between training origins (30 min)
CHUNK = 4096  # origins forecast at once
FIT_SHARE = 0.7  # servers (per source) that fit; the rest calibrate
SPLIT_SEED = 0  # the seeded draw of those servers


@dataclass
class Source:
    """A frame whose origins are gathered from `start` on (a timestamp, per server, or
    None: as early as the history allows)."""

    name: str
    frame: pd.DataFrame
    start: pd.Timestamp | dict[str, pd.Timestamp] | None = None
    measured: dict[str, str] | None = None  # {server: the one real column}
    cores: dict[str, float] = field(default_factory=dict)


@dataclass
class Gathered:
    """Origins of one source: risk-metric windows, forecast paths, truth, and extras."""

    source: str
    servers: np.ndarray  # (N,) server names
    stamps: np.ndarray  # (N,) origin timestamps, datetime64[s] UTC
    history: np.ndarray  # (N, HISTORY_STEPS, M) float32
    paths: np.ndarray  # (N, HORIZON, 2, M) float32
    future: np.ndarray  # (N, HORIZON, M) float32, NaN where not observed
    scored: np.ndarray  # (N, M) risk metrics with real data
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def evidence(self) -> ev.Evidence:
        return ev.compute(self.history, self.paths)

    def take(self, rows: np.ndarray) -> Gathered:
        """Some of the origins (an index or a boolean mask)."""
        arrays = [getattr(self, k)[rows] for k in ("servers", "stamps", "history", "paths")]
        arrays += [self.future[rows], self.scored[rows]]
        return Gathered(self.source, *arrays, {k: v[rows] for k, v in self.extras.items()})


def scored_metrics(servers: list[str], measured: dict[str, str] | None) -> np.ndarray:
    """(S, M): risk metrics with real data. cpu_used_pct counts when idle or user is
    measured (the importers set idle = 100 - user)."""
    out = np.ones((len(servers), len(risk.RISK_METRICS)), dtype=bool)
    if measured is None:
        return out
    for s, server in enumerate(servers):
        column = measured[server]
        for m, metric in enumerate(risk.RISK_METRICS):
            source = risk.RISK_SOURCES[metric]
            cpu = metric == "cpu_used_pct" and column == "cpu_user_pct"
            out[s, m] = column == source or cpu
    return out


def _origin_pairs(panel: scoring.Panel, source: Source, every: int) -> np.ndarray:
    if source.start is None:
        first = np.zeros(len(panel.servers), dtype=np.int64)
    else:
        from training.heldout import cutoff_steps

        first = cutoff_steps(panel, source.start)
    return scoring.origins(panel, first, every, ev.HISTORY_STEPS, ev.HORIZON)


Extra = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def gather(forecaster, source: Source, every: int = EVERY, extra: Extra | None = None) -> Gathered:
    """Every origin of the source: windows as the daemon builds them, forecast by
    `forecaster` in chunks. extra(windows (n, HISTORY_STEPS, 14), trajectory, cores) may
    add per-origin arrays (e.g. other methods' flags)."""
    panel = scoring.dense_panel(source.frame)
    pairs = _origin_pairs(panel, source, every)
    logger.info("%s: %d origins on %d servers", source.name, len(pairs), len(panel.servers))
    cores = np.array([source.cores.get(s, np.nan) for s in panel.servers], dtype=np.float64)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(pairs), CHUNK):
        parts.append(_chunk(forecaster, panel, pairs[start : start + CHUNK], cores, extra))
        logger.info(
            "%s: %d / %d origins", source.name, start + len(parts[-1]["history"]), len(pairs)
        )
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    names = np.array(panel.servers, dtype=object)
    steps = panel.first_step + pairs[:, 1]
    core = ("history", "paths", "future")
    return Gathered(
        source.name,
        names[pairs[:, 0]],
        (steps * 300).astype("datetime64[s]"),
        *(joined.get(k, np.empty((0,))) for k in core),
        scored=scored_metrics(panel.servers, source.measured)[pairs[:, 0]],
        extras={k: v for k, v in joined.items() if k not in core},
    )


def _chunk(forecaster, panel, pairs, cores, extra) -> dict[str, np.ndarray]:
    values, states = scoring.windows(panel, pairs, ev.HISTORY_STEPS)
    servers = [panel.servers[s] for s in pairs[:, 0]]
    last = panel.first_step + pairs[:, 1]
    window = slice(-ENCODER_LENGTH, None)
    trajectory = forecaster.forecast(values[:, window], states[:, window], servers, last)
    c = cores[pairs[:, 0]]
    out = {
        "history": ev.risk_history(values, c).astype(np.float32),
        "paths": ev.forecast_paths(trajectory[:, : ev.HORIZON], c).astype(np.float32),
        "future": ev.risk_history(scoring.actuals(panel, pairs, ev.HORIZON), c).astype(np.float32),
    }
    return out | (extra(values, trajectory, c) if extra else {})


# --- cache: gathered origins as .npz (plain arrays, no pickle) ------------------------


def save_gathered(g: Gathered, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: getattr(g, k) for k in ("history", "paths", "future", "scored")}
    arrays |= {"servers": g.servers.astype(str), "stamps": g.stamps.astype(np.int64)}
    arrays |= {f"extra_{k}": v for k, v in g.extras.items()}
    np.savez(path, **arrays)


def load_gathered(path: Path, source: str) -> Gathered:
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    extras = {k.removeprefix("extra_"): v for k, v in a.items() if k.startswith("extra_")}
    return Gathered(
        source,
        a["servers"].astype(object),
        a["stamps"].astype("datetime64[s]"),
        a["history"],
        a["paths"],
        a["future"],
        a["scored"],
        extras,
    )


def gathered(forecaster, source: Source, every: int, cache: Path | None, extra=None) -> Gathered:
    """gather(), or its cached result (cache/<source name>_every<every>.npz) if there is one."""
    name = f"{source.name.replace(' ', '_')}_every{every}.npz"
    path = None if cache is None else cache / name
    if path is not None and path.is_file():
        logger.info("%s: cached %s", source.name, path)
        return load_gathered(path, source.name)
    g = gather(forecaster, source, every, extra)
    if path is not None:
        save_gathered(g, path)
    return g


# --- the training corpus --------------------------------------------------------------


def training_end(info: dict) -> pd.Timestamp:
    """The first time a forecaster's held-out evaluation uses: its --until, else the start
    of its validation period (training_info.json)."""
    return pd.Timestamp(info.get("until") or info["validation_start"]).tz_convert("UTC")


def fit_sources(
    info: dict, fleet: Path | None, nab_dir: Path | None, azure_dir: Path | None
) -> list[Source]:
    """The corpus parts a forecaster was trained on: the generated fleet before
    training_end() less its held-out servers, and the real series' training parts (their
    CPU series; their held-out parts are never read)."""
    from training import azure, nab

    sources = []
    if fleet is not None:
        frame = pd.read_parquet(fleet)
        dc.require_valid(frame, source=str(fleet))
        keep = ~frame["server_name"].isin(info.get("holdout_servers") or [])
        keep &= frame["timestamp"] < training_end(info)
        sources.append(Source("generated", frame[keep].reset_index(drop=True)))
    if nab_dir is not None:
        measured = nab.training_measured(nab_dir)
        frame = nab.training_frame(nab_dir)
        cpu = [s for s, c in measured.items() if c == "cpu_user_pct"]
        frame = frame[frame["server_name"].isin(cpu)].reset_index(drop=True)
        sources.append(Source("nab", frame, measured=measured))
    if azure_dir is not None:
        frame = azure.training_frame(azure_dir)
        measured = dict.fromkeys(frame["server_name"].unique(), azure.MEASURED)
        sources.append(Source("azure", frame, measured=measured))
    return sources


def server_group(name: str) -> str:
    """Servers that must fall on the same side of the split: both series of an Azure VM,
    the copies of a real series."""
    name = name.split("~")[0]
    return name.rsplit("-", 1)[0] if name.startswith("azure-") else name


def fit_servers(
    servers: np.ndarray, seed: int = SPLIT_SEED, share: float = FIT_SHARE
) -> np.ndarray:
    """(N,) True for origins whose server group is in the seeded fitting share."""
    groups = np.array([server_group(s) for s in servers], dtype=object)
    names = sorted(set(groups.tolist()))
    order = np.random.default_rng(seed).permutation(len(names))
    chosen = {names[i] for i in order[: int(round(share * len(names)))]}
    return np.isin(groups, sorted(chosen))


@dataclass
class Rows:
    """Origins of the training sources; a row is one (origin, risk metric) in `keep`."""

    evidence: ev.Evidence  # (N, M)
    y: np.ndarray  # (N, M, 2) labels, NaN unknown
    keep: np.ndarray  # (N, M) trainable: scored, known, below critical now, labelled
    fit: np.ndarray  # (N,) the origin's server is in the fitting share (else calibration)
    source: np.ndarray  # (N,) source name

    def flat(self, values: np.ndarray) -> np.ndarray:
        """Per-origin (N,) or per-row (N, M, ...) values -> one per row (R, ...)."""
        if values.ndim == 1:
            values = np.broadcast_to(values[:, None], self.keep.shape)
        return values[self.keep]


def rows_of(g: Gathered, seed: int = SPLIT_SEED) -> Rows:
    """The origins of one source and which (origin, metric) rows are trainable."""
    e = g.evidence()
    y = fitting.labels(g.future)
    keep = g.scored & e.known & (e.facts["now"] < ev.CRITICAL) & ~np.isnan(y).all(axis=-1)
    source = np.full(len(g.servers), g.source, dtype=object)
    return Rows(e, y, keep, fit_servers(g.servers, seed), source)


def join_rows(parts: list[Rows]) -> Rows:
    """The rows of several sources."""
    features = {k: np.concatenate([p.evidence.features[k] for p in parts]) for k in ev.FEATURES}
    facts = {k: np.concatenate([p.evidence.facts[k] for p in parts]) for k in ev.FACTS}
    arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("y", "keep", "fit")}
    return Rows(
        ev.Evidence(features, facts), **arrays, source=np.concatenate([p.source for p in parts])
    )
