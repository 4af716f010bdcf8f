"""Settings of the dashboard: CLI flags over environment over .env.

Only TFT_API_KEY is shared with the rest of the stack; every other variable has the
prefix TFT_DASHBOARD_ (e.g. TFT_DASHBOARD_DAEMON_URL). Built once, in dash_app.main(). The
.env is the one every process reads (env_settings.env_file).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from env_settings import env_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


class DashboardSettings(BaseSettings):
    """Everything dash_app.py reads; see dash_app.py --help."""

    model_config = SettingsConfigDict(
        env_prefix="TFT_DASHBOARD_",
        env_file=env_file(),  # TFT_ENV_FILE, else ./.env
        extra="ignore",
        populate_by_name=True,
    )

    api_key: SecretStr | None = Field(default=None, validation_alias="TFT_API_KEY")
    # Where the key is read when TFT_API_KEY is not set (the spec's "API key via
    # secrets.toml"): a TOML file with api_key = "..." (or TFT_API_KEY = "...").
    secrets_file: Path = ROOT / ".streamlit" / "secrets.toml"
    daemon_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65_535)
    refresh_seconds: float = Field(default=30.0, ge=1, le=3_600)
    request_timeout_s: float = Field(default=10.0, gt=0, le=300)
    heatmap_max_servers: int = Field(default=200, ge=1, le=5_000)
    # Optional HTTP basic auth of the dashboard itself: a JSON object {"user": "password"}.
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _key_from_secrets_file(self) -> DashboardSettings:
        if self.api_key is None and self.secrets_file.is_file():
            self.api_key = key_from_secrets(self.secrets_file)
        return self

    @field_validator("daemon_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


def key_from_secrets(path: Path) -> SecretStr | None:
    """The API key in a secrets.toml (api_key or TFT_API_KEY); None when it has none."""
    try:
        secrets = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the secrets file {path}: {error}") from error
    value = secrets.get("api_key", secrets.get("TFT_API_KEY"))
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{path}: api_key must be a string")
    return SecretStr(value.strip()) if value and value.strip() else None
