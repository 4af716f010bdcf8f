"""Dash dashboard (port 8501): a client of the inference daemon's HTTP API.

    python dash_app.py [--daemon-url URL] [--refresh-seconds 30] [--host 127.0.0.1] [--port 8501]

Settings: flags over environment (TFT_DASHBOARD_*, TFT_API_KEY) over .env; see
dashboard/settings.py. The spec's `--server.port 8501` sets the port, and
`--server.fileWatcherType` / `--server.runOnSave` are accepted and ignored.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dashboard.layout import create_app
from dashboard.settings import DashboardSettings
from env_settings import SettingsError, configure_logging, load_settings

log = logging.getLogger(__name__)

__all__ = ["create_app", "main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemon-url", help="the inference daemon (default http://127.0.0.1:8000)")
    parser.add_argument("--refresh-seconds", type=float, help="refresh interval (default 30)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to serve (default 8501)")
    parser.add_argument("--server.port", dest="server_port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server.fileWatcherType", dest="ignored_1", help=argparse.SUPPRESS)
    parser.add_argument("--server.runOnSave", dest="ignored_2", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> DashboardSettings:
    """Settings from the environment and .env, with the flags given on top."""
    flags = {
        "daemon_url": args.daemon_url,
        "refresh_seconds": args.refresh_seconds,
        "host": args.host,
        "port": args.port if args.port is not None else args.server_port,
    }
    return load_settings(DashboardSettings, **{k: v for k, v in flags.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Serve the dashboard; 2 on settings that cannot be built (one line on stderr)."""
    try:
        settings = settings_from(parse_args(argv))
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    # httpx, werkzeug: a line per daemon call and per browser request otherwise
    configure_logging(settings.log_level, quiet=("httpx", "werkzeug"))
    if settings.api_key is None:
        log.warning("TFT_API_KEY is not set: the daemon will refuse the dashboard's calls")
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}"
    log.info("dashboard on %s, daemon %s", url, settings.daemon_url)
    app.run(host=settings.host, port=settings.port, debug=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
