"""Command line of the training-data generator: a seeded synthetic fleet under the contract.

    python metrics_generator.py --servers 200 --days 30 --seed 7 --out build/corpus/

Writes server_metrics.parquet, metrics_metadata.json and server_mapping.json to --out.
The simulated fleet itself is the fleet package (fleet.generate.generate_fleet, over
fleet.simulator.FleetSimulator); its mixes are fleet.profiles.MIXES, "realistic" (the
default here) adding fleet.behaviours' cloud VM behaviours. Rows are the daemon's
aggregate of each step's 5-second ticks (--tick; see fleet.ticks).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import data_contract as dc
from env_settings import configure_logging
from fleet.generate import generate_fleet, write_fleet
from fleet.profiles import MIXES
from fleet.simulator import DEFAULT_START
from fleet.ticks import DAEMON_TICK_S, SUBTICKS

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate contract training data for a fleet.")
    parser.add_argument("--servers", type=int, default=20, help="number of servers")
    parser.add_argument("--days", type=float, default=30.0, help="days to simulate")
    parser.add_argument("--step", type=int, default=dc.STEP_SECONDS, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--start", default=DEFAULT_START, help="first timestamp (UTC)")
    parser.add_argument(
        "--mix",
        choices=list(MIXES),
        default="realistic",
        help="fleet mix: realistic (half idle, batch and cron VMs) or classic (7 profiles)",
    )
    parser.add_argument(
        "--tick",
        type=int,
        default=DAEMON_TICK_S,
        help="rows aggregate ticks of this many seconds, as the daemon does (0: one sample)",
    )
    parser.add_argument("--subticks", type=int, default=SUBTICKS, help="sub-ticks per step")
    parser.add_argument("--out", type=Path, default=Path("training"), help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI: generate a fleet, validate it and write its three files."""
    args = _parse_args(argv)
    configure_logging("INFO")
    progress = not args.no_progress
    fleet = generate_fleet(
        args.servers,
        args.days,
        args.step,
        args.seed,
        args.start,
        progress,
        args.mix,
        args.tick or None,
        args.subticks,
    )
    for path in write_fleet(fleet, args.out).values():
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
