"""adapters/runner.py: settings from the environment and .env (an unreadable .env, the
backfill, the clock skew) and the daemon loop's retries; no database needed."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters import runner
from adapters.base import new_totals
from adapters.config import AdapterSettings
from adapters.mongodb_adapter import SPEC, MongoAdapterConfig
from adapters.state import StateWriteError
from feedclient.outcomes import Counts
from tests.adapter_helpers import ListSource, write_config
from tests.env_helpers import unreadable_env

BODY = {"database": {"uri": "mongodb://127.0.0.1:9", "database": "m", "collection": "c"}}


def test_an_unreadable_env_file_exits_2_with_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = unreadable_env(tmp_path / ".env", monkeypatch)
    monkeypatch.setitem(AdapterSettings.model_config, "env_file", env)
    config = write_config(tmp_path / "c.json", BODY)
    assert runner.main(SPEC, ["--config", str(config), "--once"]) == 2
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"cannot read {env}: Permission denied" in line.getMessage()
    assert "chown" in line.getMessage() and "\n" not in line.getMessage()
    assert line.exc_info is None and "secret-value" not in caplog.text


def loop_of(argv: list[str], settings: AdapterSettings, tmp_path: Path) -> Any:
    config = MongoAdapterConfig.model_validate(BODY)
    args = runner.parse_args(SPEC, ["--config", str(tmp_path / "c.json"), *argv])
    return runner.build_loop(SPEC, config, settings, args, source=ListSource([]))


def test_backfill_and_clock_skew_come_from_env_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TFT_ADAPTER_BACKFILL_HOURS was ignored: under systemd (no flag) a first start read
    nothing and the daemon took 24 h to warm up."""
    for name in ("TFT_ADAPTER_BACKFILL_HOURS", "TFT_MAX_CLOCK_SKEW_S"):
        monkeypatch.delenv(name, raising=False)
    dry = ["--once", "--dry-run"]
    default = loop_of(dry, AdapterSettings(_env_file=None), tmp_path)
    assert (default.backfill, default.max_skew) == (timedelta(hours=26), timedelta(seconds=300))
    env = tmp_path / ".env"
    env.write_text("TFT_ADAPTER_BACKFILL_HOURS=5\nTFT_MAX_CLOCK_SKEW_S=0\n")
    from_file = loop_of(dry, AdapterSettings(_env_file=env), tmp_path)
    assert (from_file.backfill, from_file.max_skew) == (timedelta(hours=5), timedelta(0))
    monkeypatch.setenv("TFT_ADAPTER_BACKFILL_HOURS", "7")  # the environment wins over .env
    assert loop_of(dry, AdapterSettings(_env_file=env), tmp_path).backfill == timedelta(hours=7)
    flag = loop_of([*dry, "--backfill-hours", "1"], AdapterSettings(_env_file=env), tmp_path)
    assert flag.backfill == timedelta(hours=1)


def test_the_daemon_loop_backs_off_on_a_write_error_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An OSError writing the cursor once ended the process (a restart loop under systemd)."""
    loop = loop_of(["--daemon", "--dry-run"], AdapterSettings(_env_file=None), tmp_path)
    stop, calls = threading.Event(), []

    def poll(*, now: datetime, **_: Any) -> Counts:
        calls.append(now)
        if len(calls) == 1:
            raise StateWriteError("cannot write the adapter state file x: No space left")
        stop.set()
        return new_totals()

    loop.poll = poll  # type: ignore[method-assign]
    assert runner.run_daemon(loop, interval=0.01, stop=stop) == 0
    assert len(calls) == 2
    assert "poll failed (cannot write the adapter state file x: No space left)" in caplog.text
