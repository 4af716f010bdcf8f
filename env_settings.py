"""Building a process's settings (environment, .env, flags) with one line per problem.

Every entry point (the daemon, the dashboard, the generator daemon, the adapters) builds
its pydantic Settings with load_settings() and, on SettingsError, logs its message and
exits 2: a bad value or an unreadable .env is one line naming the file or the setting and
the fix, never a traceback (under systemd a traceback is a restart loop nobody reads).
Values are never shown: a setting may hold the API key.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class SettingsError(ValueError):
    """Settings that cannot be built; the message names the problem and the fix."""


def load_settings(cls: type[S], **overrides: Any) -> S:
    """cls(**overrides); SettingsError if a value is invalid or a file cannot be read."""
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
