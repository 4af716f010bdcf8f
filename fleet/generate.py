"""The training corpus: a whole simulated fleet at once, and its three files.

generate_fleet simulates n servers for some days (FleetSimulator, the same fleet as the
live feed) with a progress bar; rows aggregate 5-second ticks as the daemon does, by
default. write_fleet validates the frame against the data contract and writes
server_metrics.parquet, metrics_metadata.json and server_mapping.json: what
metrics_generator.py (the command line) writes and the trainer reads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

import data_contract as dc
from fleet.events import Incident
from fleet.frame import contract_frame
from fleet.simulator import DEFAULT_START, FleetSimulator
from fleet.ticks import DAEMON_TICK_S, SUBTICKS

logger = logging.getLogger(__name__)


@dataclass
class Fleet:
    """A generated fleet: the contract frame, its incidents and server name -> profile."""

    frame: pd.DataFrame
    incidents: list[Incident]
    servers: dict[str, str]
    seed: int
    days: float
    step_seconds: int
    start: pd.Timestamp
    end: pd.Timestamp  # end of the simulated span (exclusive)
    mix: str = "classic"
    tick_seconds: int | None = None  # rows aggregate ticks of this length (None: one tick)

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description of the run."""
        profiles: dict[str, list[str]] = {}
        for server, profile in self.servers.items():
            profiles.setdefault(profile, []).append(server)
        return {
            "contract_version": dc.CONTRACT_VERSION,
            "seed": self.seed,
            "n_servers": len(self.servers),
            "days": self.days,
            "step_seconds": self.step_seconds,
            "mix": self.mix,
            "tick_seconds": self.tick_seconds,
            "aggregation": dict(dc.AGGREGATION) if self.tick_seconds else None,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": len(self.frame),
            "profiles": profiles,
            "incidents": [incident.as_dict() for incident in self.incidents],
        }


def generate_fleet(
    n_servers: int = 20,
    days: float = 30.0,
    step_seconds: int = dc.STEP_SECONDS,
    seed: int = 42,
    start: str | pd.Timestamp = DEFAULT_START,
    progress: bool = False,
    mix: str = "classic",
    tick_seconds: int | None = DAEMON_TICK_S,
    subticks: int = SUBTICKS,
) -> Fleet:
    """Simulate n_servers for days at step_seconds; reproducible from seed.

    Rows aggregate tick_seconds ticks as the daemon does (None: one sample per step).
    """
    sim = FleetSimulator(n_servers, seed, step_seconds, start, mix, tick_seconds, subticks)
    total, day = int(round(days * 86_400 / step_seconds)), max(1, 86_400 // step_seconds)
    chunks = []
    with tqdm(total=total, disable=not progress, unit="step", desc="fleet") as bar:
        for done in range(0, total, day):
            chunks.append(sim.simulate_chunk(min(day, total - done)))
            bar.update(min(day, total - done))
    frame = contract_frame(sim.names, chunks or [sim.simulate_chunk(0)])
    logger.info("generated %d rows, %d incidents", len(frame), len(sim.incidents))
    return Fleet(
        frame,
        sim.incidents,
        sim.servers,
        seed,
        days,
        step_seconds,
        sim.start,
        sim.now,
        mix,
        sim.tick_seconds,
    )


def write_fleet(fleet: Fleet, out_dir: str | Path) -> dict[str, Path]:
    """Validate, then write server_metrics.parquet, metrics_metadata.json, server_mapping.json."""
    ok, errors = dc.validate_schema(fleet.frame)
    if not ok:
        raise dc.ContractError(errors, "generated fleet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fleet.frame.to_parquet(out / "server_metrics.parquet", index=False)
    payloads = {
        "metrics_metadata.json": fleet.metadata(),
        "server_mapping.json": dc.create_server_mapping(fleet.servers),
    }
    for name, payload in payloads.items():
        (out / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return {name: out / name for name in ("server_metrics.parquet", *payloads)}
