"""load_settings(): a bad value or an unreadable .env is one SettingsError line naming the
setting or the file and the fix, never a traceback and never a value (it may be the key).
The entry points exit 2 with that line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import dash_app
import metrics_generator_daemon
from dashboard.settings import DashboardSettings
from env_settings import SettingsError, load_settings
from simfeed.settings import Settings as GeneratorSettings
from tests.env_helpers import unreadable_env

ROOT = Path(__file__).resolve().parents[1]


class Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", env_file=None)
    api_key: SecretStr | None = None
    port: int = 1


def test_an_unreadable_env_file_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = unreadable_env(tmp_path / ".env", monkeypatch)
    monkeypatch.setitem(Example.model_config, "env_file", env)
    with pytest.raises(SettingsError) as caught:
        load_settings(Example)
    message = str(caught.value)
    assert f"cannot read {env}: Permission denied" in message
    assert "chown" in message and "\n" not in message and "secret-value" not in message


def test_invalid_values_are_named_without_their_values() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(Example, port="secret-value", api_key=3)
    message = str(caught.value)
    assert "port:" in message and "api_key:" in message and "secret-value" not in message


@pytest.mark.parametrize(
    "main, settings",
    [(dash_app.main, DashboardSettings), (metrics_generator_daemon.main, GeneratorSettings)],
    ids=["dashboard", "generator daemon"],
)
def test_the_entry_point_exits_2_with_one_line(
    main: Callable[[list[str]], int],
    settings: type[BaseSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = unreadable_env(tmp_path / ".env", monkeypatch)
    monkeypatch.setitem(settings.model_config, "env_file", env)
    assert main([]) == 2
    err = capsys.readouterr().err  # the line itself, or the generator's log line of it
    assert f"cannot read {env}: Permission denied" in err and err.count("\n") == 1


def test_the_inference_daemon_exits_2_with_one_line(tmp_path: Path) -> None:
    """A real process, whose .env (in its working directory) fails to read: reading
    /proc/self/mem at offset 0 fails with EIO for any user, root included."""
    (tmp_path / ".env").symlink_to("/proc/self/mem")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tft_inference_daemon.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TFT_")},
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"cannot read {tmp_path / '.env'}: Input/output error")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
