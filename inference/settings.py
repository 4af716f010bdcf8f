"""The inference daemon's settings: environment (TFT_*), .env, then command-line flags.

The .env is the one every process reads (env_settings.env_file: TFT_ENV_FILE, else .env in
the working directory).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from env_settings import env_file


class DaemonSettings(BaseSettings):
    """Every setting is listed in .env.example; main() builds this once."""

    model_config = SettingsConfigDict(env_prefix="TFT_", env_file=env_file(), extra="ignore")

    api_key: SecretStr | None = None  # TFT_API_KEY: required unless insecure_no_auth
    insecure_no_auth: bool = False  # serve without authentication (development only)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    model: Path = Path("models/latest")  # artifact directory (or models/latest)
    models_dir: Path = Path("models")  # /admin/reload-model loads only from here
    baseline: bool = False  # if no TFT can be loaded, serve a labelled seasonal-naive forecast
    state_dir: Path | None = Path("state")  # buffers + forecasts; None: no persistence
    save_interval_s: float = Field(60.0, gt=0)
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0)  # larger /feed bodies get 413
    max_records_per_body: int = Field(50_000, gt=0)  # /feed bodies with more records get 413
    max_servers: int = Field(10_000, gt=0)  # servers tracked; new ones past it are rejected
    max_clock_skew_s: float = Field(300.0, ge=0)  # ticks dated past now + this: rejected
    close_grace_s: float = Field(30.0, ge=0)  # the wall clock closes a step this long after
    min_observed_share: float = Field(0.8, ge=0, le=1)  # of the window's steps, to be ready
    silent_after_s: float = Field(900.0, gt=0)  # no newer tick: forecast stale, "silent" alert
    evict_after_s: float = Field(86_400.0, gt=0)  # nothing received this long: forgotten
    wal: bool = True  # log accepted batches in state_dir/wal, replayed after a crash
    wal_fsync_s: float = Field(1.0, gt=0)  # fsync the log this often (host crash: lost)
    keepalive_s: float = Field(15.0, gt=0)  # idle HTTP keep-alive (clients must use less)
    docs: bool = False  # serve /docs and /openapi.json (behind the key)
    forecast_batch_size: int | None = Field(None, gt=0)  # None: the GPU profile's, CPU 128
    torch_threads: int = Field(0, ge=0)  # 0: torch's default (one per core)
    forecast_worker: bool = True  # run forecast passes in the background (tests: False)
    coalesce_s: float = Field(1.0, ge=0)  # wait after a step closes, to batch servers
    retry_s: float = Field(10.0, gt=0)  # wait after a failed forecast pass
    server_cores_file: Path | None = None  # JSON {"server": cores} for load per core
    default_cores: float | None = Field(None, gt=0)  # cores of servers not in that file
    serve_better_method: bool = False  # per metric, serve a baseline that beat the TFT
    log_level: str = "INFO"

    def key(self) -> str | None:
        return (self.api_key.get_secret_value() if self.api_key else None) or None

    def server_cores(self) -> dict[str, float]:
        """The core counts file, checked: {server name: cores > 0}."""
        if self.server_cores_file is None:
            return {}
        try:
            data = json.loads(self.server_cores_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON
            raise ValueError(f"TFT_SERVER_CORES_FILE {self.server_cores_file}: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(v, int | float) and v > 0 for v in data.values()
        ):
            raise ValueError(f"{self.server_cores_file}: must map server names to cores > 0")
        return {str(k): float(v) for k, v in data.items()}
