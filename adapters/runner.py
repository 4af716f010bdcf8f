"""The adapters' shared command line and run modes: --daemon, --once, --dry-run, --export.

Each adapter module supplies an AdapterSpec (its config model, source and mapper) and
calls main(). Exit codes: 0 done, 1 the poll failed (daemon or database unreachable,
key refused, the state or quarantine file not writable), 2 bad configuration (the JSON
config, the state file, or the settings: an unreadable .env, a bad TFT_* value).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import orjson

from adapters import state as cursor_state
from adapters.base import Loop, Mapper, Source, SourceUnavailable, forward_to, new_totals
from adapters.config import (
    ENV_FILE,
    AdapterConfig,
    AdapterSettings,
    ConfigError,
    load_config,
    resolve_api_key,
    state_file_for,
)
from adapters.export import export_records
from adapters.forward import DaemonRefused, DaemonUnavailable, Forwarder, new_client
from adapters.quarantine import Quarantine, QuarantineWriteError
from env_settings import configure_logging, load_settings
from feedclient.outcomes import Counts

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
SUMMARY_EVERY_S = 60.0
# A poll that failed on one of these is tried again later (with backoff); the cursor stays.
RETRIED = (
    DaemonUnavailable,
    DaemonRefused,
    SourceUnavailable,
    cursor_state.StateWriteError,
    QuarantineWriteError,
)


@dataclass(frozen=True)
class AdapterSpec:
    """What one adapter brings to the shared loop."""

    name: str  # "mongodb"
    config_model: type[AdapterConfig]
    make_source: Callable[[Any, AdapterSettings], Source]
    make_mapper: Callable[[Any], Mapper]


def parse_args(spec: AdapterSpec, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"{spec.name} adapter: metrics to the TFT daemon")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--daemon", action="store_true", help="poll every --interval seconds")
    mode.add_argument(
        "--once", action="store_true", help="one poll; the exit code says if it worked"
    )
    p.add_argument("--config", type=Path, required=True, help="the adapter's JSON config")
    p.add_argument("--interval", type=float, help="seconds between polls (default: the config's)")
    p.add_argument("--state-file", type=Path, help="the cursor file (default under the state dir)")
    p.add_argument(
        "--backfill-hours",
        type=float,
        help="history read on the first start (default: TFT_ADAPTER_BACKFILL_HOURS, 26)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the records, send nothing")
    p.add_argument("--export", type=Path, help="write the records of --since..--until to parquet")
    p.add_argument("--since", type=_time, help="ISO time: export from")
    p.add_argument("--until", type=_time, help="ISO time: export until (default now)")
    p.add_argument("--verbose", action="store_true", help="log every poll")
    args = p.parse_args(argv)
    if args.export and not args.since:
        p.error("--export needs --since")
    return args


def main(spec: AdapterSpec, argv: list[str] | None = None) -> int:
    args = parse_args(spec, argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)  # httpx: WARNING
    try:
        settings = load_settings(AdapterSettings)
        config = load_config(args.config, spec.config_model)
        source = spec.make_source(config, settings)
    except (ConfigError, ValueError) as error:
        log.error("%s", error)
        return 2
    try:
        if args.export:
            return _export(spec, config, source, args)
        try:
            loop = build_loop(spec, config, settings, args, source=source)
        except (cursor_state.StateFileError, ValueError) as error:
            log.error("%s", error)
            return 2
        if args.daemon:
            return run_daemon(loop, interval=args.interval or config.fetch_interval)
        return run_once(loop)
    finally:
        source.close()


def build_loop(
    spec: AdapterSpec,
    config: AdapterConfig,
    settings: AdapterSettings,
    args: argparse.Namespace,
    *,
    source: Source,
    out: TextIO | None = None,
) -> Loop:
    """The loop of a run: a dry run prints records and keeps no cursor or quarantine."""
    state_file = args.state_file or state_file_for(
        settings.tft_adapter_state_dir, spec.name, args.config
    )
    if args.dry_run:
        quarantine, send, state_file = Quarantine(None), _printer(out or sys.stdout), None
    else:
        quarantine = Quarantine(
            config.quarantine_file or state_file.with_suffix(".quarantine.jsonl")
        )
        send = forward_to(_forwarder(config, settings), quarantine, config.batch_size)
    return Loop(
        source=source,
        mapper=spec.make_mapper(config),
        send=send,
        quarantine=quarantine,
        state_file=state_file,
        overlap=timedelta(seconds=config.overlap_seconds),
        batch_size=config.batch_size,
        backfill=timedelta(hours=backfill_hours(args, settings)),
        max_skew=timedelta(seconds=settings.tft_max_clock_skew_s),
        cursor=cursor_state.load(state_file) if state_file else cursor_state.Cursor(),
    )


def backfill_hours(args: argparse.Namespace, settings: AdapterSettings) -> float:
    """The history read on a first start: --backfill-hours, else TFT_ADAPTER_BACKFILL_HOURS
    (environment or .env; 26 by default, the daemon's 24 h window and a margin)."""
    if args.backfill_hours is not None:
        return args.backfill_hours
    return settings.tft_adapter_backfill_hours


def _forwarder(config: AdapterConfig, settings: AdapterSettings) -> Forwarder:
    env_key = settings.tft_api_key.get_secret_value() if settings.tft_api_key else None
    key, where = resolve_api_key(
        config.tft_daemon.api_key, env_file=ENV_FILE, environment_key=env_key
    )
    if key is None:
        log.warning(
            "no API key: set tft_daemon.api_key in the config, TFT_API_KEY in %s or in the "
            "environment (python generate_api_key.py makes one); the daemon will refuse",
            ENV_FILE.absolute(),
        )
    else:
        log.info("API key from %s", where)
    return Forwarder(client=new_client(config.tft_daemon.url, key, config.tft_daemon.timeout_s))


def _printer(out: TextIO) -> Callable[[list[dict[str, Any]]], Counts]:
    def send(records: list[dict[str, Any]]) -> Counts:
        for record in records:
            out.write(orjson.dumps(record).decode() + "\n")
        return new_totals(records=len(records))

    return send


def run_once(loop: Loop) -> int:
    """One poll; 0 when it delivered everything it read, 1 when something was down."""
    try:
        totals = loop.poll(now=datetime.now(timezone.utc))
    except RETRIED as error:
        log.error("poll failed: %s", error)
        return 1
    log.info("poll done: %s", totals.text())
    return 0


def run_daemon(loop: Loop, *, interval: float, stop: threading.Event | None = None) -> int:
    """Poll every interval until stop is set (by default: by SIGTERM/SIGINT); back off
    while something is down or a file cannot be written."""
    stop = stop or _stop_on_signals()
    future = f"dated past now + {loop.max_skew}: quarantined" if loop.max_skew else "no limit"
    log.info("polling every %.1f s (overlap %s; documents %s)", interval, loop.overlap, future)
    failures, summary, last = 0, new_totals(), time.monotonic()
    while not stop.is_set():
        delay = interval
        try:
            totals = loop.poll(now=datetime.now(timezone.utc), stop=stop.is_set)
            log.debug("poll: %s", totals.text())
            summary.add(totals)
            failures = 0
        except RETRIED as error:
            failures += 1
            delay = _backoff(error, failures, interval)
            log.warning("poll failed (%s); next try in %.0f s, cursor kept", error, delay)
        if time.monotonic() - last >= SUMMARY_EVERY_S:
            _log_summary(summary, loop)
            summary, last = new_totals(), time.monotonic()
        stop.wait(delay)
    _log_summary(summary, loop)
    log.info("stopped; cursor at %s", loop.cursor.time)
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _backoff(error: Exception, failures: int, interval: float) -> float:
    if isinstance(error, DaemonRefused):
        return MAX_BACKOFF_S
    return min(interval * 2 ** min(failures - 1, 10), MAX_BACKOFF_S)


def _log_summary(summary: Counts, loop: Loop) -> None:
    lag = ""
    if loop.cursor.time is not None:
        behind = (datetime.now(timezone.utc) - loop.cursor.time).total_seconds()
        lag = f"; newest delivered {loop.cursor.time.isoformat()} ({behind:.0f} s ago)"
    log.info("delivered: %s%s", summary.text(), lag)


def _export(spec: AdapterSpec, config: AdapterConfig, source: Source, args: Any) -> int:
    until = args.until or datetime.now(timezone.utc)
    try:
        rows = export_records(
            source=source,
            mapper=spec.make_mapper(config),
            since=args.since,
            until=until,
            path=args.export,
            batch_size=config.batch_size,
        )
    except SourceUnavailable as error:
        log.error("export failed: %s", error)
        return 1
    log.info("exported %d records to %s", rows, args.export)
    return 0


def _time(text: str) -> datetime:
    """An ISO 8601 time for --since/--until (naive: UTC)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-01 or 2026-11-01T06:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
