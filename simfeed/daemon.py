"""Metrics generator daemon: a live simulated fleet fed into the TFT daemon's /feed.

    python metrics_generator_daemon.py --daemon-url http://localhost:8000 --servers 20 \\
        --interval 5 [--backfill-hours 24] [--speed 1] [--scenario healthy] [--seed S]

It backfills --backfill-hours of history (one record per server per 5-minute step, in
batches), then streams one tick per server every --interval seconds, simulated time
running --speed times faster than the clock (above 1, timestamps run ahead of the wall
clock: start the daemon with TFT_MAX_CLOCK_SKEW_S=0, as deploy/run_stack.sh does).
Scenarios (healthy, degrading, critical, cascade) are chosen with --scenario and switched
at runtime on the control API (POST http://127.0.0.1:8001/scenario, X-API-Key). The
fleet is fleet.simulator.FleetSimulator: the same behaviour as the training data.
The key comes from TFT_API_KEY (environment or .env); other settings may also come from
TFT_GENERATOR_<NAME> variables (e.g. TFT_GENERATOR_KEEPALIVE_S, below the daemon's
TFT_KEEPALIVE_S). The entry script is metrics_generator_daemon.py; this module is its
command line and process life (flags, logging, signals), the rest of simfeed the feed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from env_settings import SettingsError, configure_logging, load_settings
from simfeed.runner import run, write_cores_file
from simfeed.scenarios import SCENARIOS, ScenarioError
from simfeed.settings import Settings

logger = logging.getLogger("metrics_generator_daemon")


def _servers(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """The flags given on the command line, as Settings field values (absent ones omitted)."""
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], argument_default=argparse.SUPPRESS
    )
    p.add_argument("--daemon-url", help="TFT inference daemon (default http://localhost:8000)")
    p.add_argument("--servers", type=int, help="fleet size (default 20)")
    p.add_argument("--interval", type=float, help="wall seconds between ticks (default 5)")
    p.add_argument("--backfill-hours", type=float, help="history sent at start (default 24)")
    p.add_argument(
        "--speed",
        type=float,
        help="simulated seconds per wall second (default 1); above 1 the daemon needs "
        "TFT_MAX_CLOCK_SKEW_S=0",
    )
    p.add_argument("--scenario", choices=SCENARIOS, help="scenario at start (default healthy)")
    p.add_argument(
        "--scenario-servers", type=_servers, help="comma-separated servers for --scenario"
    )
    p.add_argument("--seed", type=int, help="fleet seed (default 42)")
    p.add_argument("--control-host", help="control API address (default 127.0.0.1)")
    p.add_argument("--control-port", type=int, help="control API port, 0 = off (default 8001)")
    p.add_argument("--batch-size", type=int, help="records per POST, max 5000 (default 2000)")
    p.add_argument("--buffer-records", type=int, help="unsent records kept (default 50000)")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="no API key: for a daemon run with --insecure-no-auth",
    )
    p.add_argument(
        "--to-mongodb",
        metavar="URI",
        help="write into MongoDB (monitoring.server_metrics) instead of POSTing to the daemon",
    )
    p.add_argument(
        "--to-elasticsearch",
        metavar="URL",
        help="index into Elasticsearch (server-metrics) instead of POSTing to the daemon",
    )
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--write-cores",
        metavar="FILE",
        help="write {server: cores} of --servers servers as JSON (for the daemon's "
        "TFT_SERVER_CORES_FILE) and exit",
    )
    return vars(p.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """Run the daemon until SIGINT/SIGTERM; 2 on bad settings or a busy control port."""
    overrides = parse_args(argv)
    if "write_cores" in overrides:
        write_cores_file(overrides["write_cores"], overrides.get("servers", 20))
        return 0
    try:
        settings = load_settings(Settings, **overrides)
    except SettingsError as exc:
        configure_logging("INFO", force=True)
        logger.error("%s", exc)
        return 2
    configure_logging(settings.log_level, force=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():  # a second signal: stop now, without the last flush
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        return run(settings, stop)
    except KeyboardInterrupt:
        return 130
    except ScenarioError as exc:
        logger.error("Scenario %s: %s", settings.scenario, exc)
    except OSError as exc:
        logger.error("Cannot start: %s", exc)
    return 2
