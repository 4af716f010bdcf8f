"""An adapter's configuration: its JSON file (as the spec shows) plus a few settings.

The JSON file holds the source (each adapter adds its own section), the daemon
(`tft_daemon`: url, api_key), `fetch_interval`, `batch_size`, `overlap_seconds`, and an
optional `mapping`. Secrets may stay out of it: TFT_API_KEY, and the database passwords
TFT_MONGODB_PASSWORD, TFT_ELASTICSEARCH_PASSWORD, TFT_ELASTICSEARCH_API_KEY come from the
environment or .env (AdapterSettings), as do the history read on a first start
(TFT_ADAPTER_BACKFILL_HOURS, which --backfill-hours overrides) and the clock skew allowed
(TFT_MAX_CLOCK_SKEW_S, the daemon's own setting: documents dated later are quarantined).

The API key's priority is the spec's (section 4): `tft_daemon.api_key` in the config,
then the .env (env_settings.env_file: TFT_ENV_FILE, else .env in the working directory),
then the TFT_API_KEY environment variable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from env_settings import env_file

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = env_file()  # the .env every process reads: TFT_ENV_FILE, else ./.env


class AdapterSettings(BaseSettings):
    """What the adapters read from the environment (over .env)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    tft_api_key: SecretStr | None = None
    tft_adapter_state_dir: Path = ROOT / "state" / "adapters"
    tft_mongodb_password: SecretStr | None = None
    tft_elasticsearch_password: SecretStr | None = None
    tft_elasticsearch_api_key: SecretStr | None = None
    tft_adapter_backfill_hours: float = Field(default=26.0, ge=0)  # read on a first start
    tft_max_clock_skew_s: float = Field(default=300.0, ge=0)  # later: quarantined; 0: off


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "http://localhost:8000"
    api_key: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)


class AdapterConfig(BaseModel):
    """The keys both adapters share; each adapter subclasses it with its source."""

    model_config = ConfigDict(extra="forbid")

    tft_daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    fetch_interval: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=5000)
    overlap_seconds: float = Field(default=60.0, ge=0)
    mapping: dict[str, Any] | None = None
    quarantine_file: Path | None = None


class ConfigError(ValueError):
    """The config file cannot be used: says which file, key and problem."""


Config = TypeVar("Config", bound=AdapterConfig)


def load_config(path: Path, model: type[Config]) -> Config:
    """The config in path, validated against model."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the config {path}: {error}") from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from error


def resolve_api_key(
    config_key: str | None, *, env_file: Path, environment_key: str | None
) -> tuple[str | None, str]:
    """The API key and where it came from: the config, then env_file, then the
    environment (the spec's order; pydantic-settings would put the environment first)."""
    if config_key:
        return config_key, "the config file"
    file_key = dotenv_values(env_file).get("TFT_API_KEY") if env_file.is_file() else None
    if file_key and file_key.strip():
        return file_key.strip(), str(env_file.absolute())
    if environment_key and environment_key.strip():
        return environment_key.strip(), "the TFT_API_KEY environment variable"
    return None, "nowhere"


def state_file_for(state_dir: Path, adapter: str, config_path: Path) -> Path:
    """The default cursor file: one per adapter and config file, under state_dir."""
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]
    return state_dir / f"{adapter}-{config_path.stem}-{digest}.json"
