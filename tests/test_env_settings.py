"""env_settings: load_settings(), env_file(), configure_logging().

A bad value or an unreadable .env is one SettingsError line naming the setting or the file
and the fix, never a traceback and never a value (it may be the key); the entry points exit
2 with that line. Every process finds its .env by one rule, and logs in one format."""

from __future__ import annotations

import logging
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
from env_settings import LOG_FORMAT, SettingsError, configure_logging, env_file, load_settings
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


# --- one .env for every process: TFT_ENV_FILE, else .env in the working directory ----

SETTINGS_CLASSES = {
    "daemon": "inference.settings:DaemonSettings",
    "generator": "simfeed.settings:Settings",
    "dashboard": "dashboard.settings:DashboardSettings",
    "adapters": "adapters.config:AdapterSettings",
}
# Builds each Settings class in a fresh process and prints the API key each found.
PROBE = """
import importlib, sys
from env_settings import load_settings
for name, where in {classes}.items():
    module, cls = where.split(":")
    settings = load_settings(getattr(importlib.import_module(module), cls))
    key = getattr(settings, "api_key", None) or getattr(settings, "tft_api_key", None)
    print(name, key.get_secret_value() if key else None)
"""


def test_env_file_is_tft_env_file_else_the_working_directorys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TFT_ENV_FILE", raising=False)
    assert env_file() == Path(".env")
    monkeypatch.setenv("TFT_ENV_FILE", "  ")
    assert env_file() == Path(".env")
    monkeypatch.setenv("TFT_ENV_FILE", "/etc/tft/.env")
    assert env_file() == Path("/etc/tft/.env")


def test_every_settings_class_reads_the_one_env_file() -> None:
    from adapters.config import ENV_FILE, AdapterSettings
    from inference.settings import DaemonSettings

    for cls in (DaemonSettings, GeneratorSettings, DashboardSettings, AdapterSettings):
        assert cls.model_config["env_file"] == env_file(), cls
    assert ENV_FILE == env_file()  # where the adapters read the key first


def _probe(cwd: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TFT_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(classes=SETTINGS_CLASSES)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.mark.slow
def test_every_process_finds_the_same_env_file(tmp_path: Path) -> None:
    """The working directory's .env, or the TFT_ENV_FILE one (relative: from the working
    directory), for the four processes and for generate_api_key.py, which writes it."""
    (tmp_path / ".env").write_text("TFT_API_KEY=from-cwd\n")
    (tmp_path / "other.env").write_text("TFT_API_KEY=from-named\n")
    assert set(_probe(tmp_path).values()) == {"from-cwd"}
    assert set(_probe(tmp_path, TFT_ENV_FILE="other.env").values()) == {"from-named"}
    assert set(_probe(ROOT, TFT_ENV_FILE=str(tmp_path / "other.env")).values()) == {"from-named"}
    written = tmp_path / "written.env"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TFT_")}
    subprocess.run(
        [sys.executable, str(ROOT / "generate_api_key.py")],
        cwd=tmp_path,
        env={**clean, "TFT_ENV_FILE": "written.env"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    key = written.read_text().split("TFT_API_KEY=", 1)[1].split()[0]
    assert set(_probe(tmp_path, TFT_ENV_FILE="written.env").values()) == {key}


# --- one logging setup -------------------------------------------------------------


def test_configure_logging_formats_and_quiets(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    chatty = logging.getLogger("httpx")
    monkeypatch.setattr(chatty, "level", chatty.level)
    configure_logging("debug")
    assert root.level == logging.DEBUG and chatty.level == logging.WARNING
    assert root.handlers[0].formatter._fmt == LOG_FORMAT
    configure_logging("error", quiet=("httpx",), force=True)
    assert root.level == logging.ERROR and chatty.level == logging.ERROR
    assert len(root.handlers) == 1
