"""TFT inference daemon: receives metrics on /feed, serves forecasts on /predict.

    python tft_inference_daemon.py --port 8000 --model models/latest [--state-dir state]

The API key comes from TFT_API_KEY (environment or .env). Without one the daemon refuses
to start, unless --insecure-no-auth is given. Every setting is in .env.example; flags
override the environment. The app itself is inference.app.create_app.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from env_settings import SettingsError, configure_logging, load_settings
from inference.settings import DaemonSettings

logger = logging.getLogger("tft_inference_daemon")


def parse_args(argv: list[str] | None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--model", type=Path, help="model artifact (default models/latest)")
    parser.add_argument("--state-dir", type=Path, help="where buffers and forecasts are saved")
    parser.add_argument(
        "--baseline",
        action="store_true",
        default=None,
        help="if the TFT cannot be loaded, serve a seasonal-naive forecast labelled as such",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="serve without an API key (development only; logged loudly)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING...")
    args = vars(parser.parse_args(argv))
    return {key: value for key, value in args.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(DaemonSettings, **parse_args(argv))
        settings.server_cores()  # read now: a bad file is one line, not a startup traceback
    except (SettingsError, OSError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    configure_logging(settings.log_level)
    if settings.key() is None and not settings.insecure_no_auth:
        logger.error(
            "no API key: set TFT_API_KEY (run `python generate_api_key.py`), "
            "or start with --insecure-no-auth for local development"
        )
        return 2
    if settings.key() is None:
        logger.warning("!!! AUTHENTICATION DISABLED (--insecure-no-auth): anyone can feed and read")
    return _serve(settings)


def _serve(settings: DaemonSettings) -> int:
    import torch
    import uvicorn

    from inference.app import create_app
    from inference.early_warning import WarningLoadError, warning_for
    from inference.loading import ModelLoadError, load_forecaster

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    try:  # before uvicorn, so that a bad model is one log line, not a startup traceback
        forecaster = load_forecaster(settings)
        warning = warning_for(forecaster, settings.model)
    except (ModelLoadError, WarningLoadError) as exc:
        logger.error("%s; not starting", exc)
        return 3
    app = create_app(settings, model=forecaster, warning=warning)
    logger.info("starting inference daemon on %s:%d", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keepalive_s,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
