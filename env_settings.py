"""Building a process's settings (environment, .env, flags) with one line per problem.

Where the .env is, for every process (the daemon, the dashboard, the generator daemon,
the adapters) and for generate_api_key.py, which writes it: the file TFT_ENV_FILE names
(a relative name is taken from the working directory), else `.env` in the working
directory. `make demo`, deploy/run_stack.sh and deploy/start_all_production.sh run every
process from the checkout's root, so there it is the checkout's .env; systemd and NSSM
run them in the install folder and docker in /app, and load their own env file into the
environment (EnvironmentFile=, compose's env_file:), which wins over any .env. A missing
file is no error: the environment alone is then the configuration.

Every entry point (the daemon, the dashboard, the generator daemon, the adapters) builds
its pydantic Settings with load_settings() and, on SettingsError, logs its message and
exits 2: a bad value or an unreadable .env is one line naming the file or the setting and
the fix, never a traceback (under systemd a traceback is a restart loop nobody reads).
Values are never shown: a setting may hold the API key.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pydantic is imported when settings are built: generate_api_key.py
    from pydantic import ValidationError  # and configure_logging() stay light
    from pydantic_settings import BaseSettings

S = TypeVar("S", bound="BaseSettings")

ENV_FILE_VARIABLE = "TFT_ENV_FILE"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def env_file() -> Path:
    """The .env of this process: $TFT_ENV_FILE, else .env in the working directory.

    Relative, it stays relative: pydantic-settings opens it from the working directory
    when the settings are built. Every Settings class uses this as its env_file."""
    return Path(os.environ.get(ENV_FILE_VARIABLE, "").strip() or ".env")


def configure_logging(
    level: str | int = "INFO", *, quiet: Iterable[str] = ("httpx",), force: bool = False
) -> None:
    """The stack's log lines on stderr: time, level, logger, message; the loggers in
    quiet (a line per HTTP request otherwise) at WARNING or above. force replaces the
    handlers an earlier call installed."""
    logging.basicConfig(
        level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT, force=force
    )
    floor = max(logging.WARNING, logging.getLogger().level)
    for name in quiet:
        logging.getLogger(name).setLevel(floor)


class SettingsError(ValueError):
    """Settings that cannot be built; the message names the problem and the fix."""


def load_settings(cls: type[S], **overrides: Any) -> S:
    """cls(**overrides); SettingsError if a value is invalid or a file cannot be read."""
    from pydantic import ValidationError

    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError("invalid settings:\n" + describe_errors(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(unreadable(exc, env_files(cls))) from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, without the input values (they may hold the key)."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def env_files(cls: type[BaseSettings]) -> list[Path]:
    """The .env files cls reads, as absolute paths."""
    found = cls.model_config.get("env_file")
    if found is None:
        return []
    paths = [found] if isinstance(found, str | Path) else list(found)
    return [Path(p).absolute() for p in paths]


def unreadable(exc: OSError | UnicodeDecodeError, candidates: list[Path]) -> str:
    """The line for a file that could not be read (the .env, unless exc names another)."""
    named = getattr(exc, "filename", None)
    path = Path(named).absolute() if named else next(iter(candidates), Path(".env"))
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    user = getpass.getuser()
    return (
        f"cannot read {path}: {reason}. Make it readable by user {user!r}, which runs "
        f"this process (for example `sudo chown {user} {path}`; keep it mode 600), "
        "or remove it and set the variables in the environment"
    )
