"""Settings of the metrics generator daemon: CLI flags over environment over .env.

Only TFT_API_KEY is shared with the rest of the stack; every other variable has the
prefix TFT_GENERATOR_ (e.g. TFT_GENERATOR_DAEMON_URL). Built once, in main(). The .env is
the one every process reads (env_settings.env_file).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from env_settings import env_file

Scenario = Literal["healthy", "degrading", "critical", "cascade"]
MAX_BATCH = 5_000  # records per POST: about 2 MB of JSON, well under the daemon's 16 MiB


class Settings(BaseSettings):
    """Everything the generator daemon reads; see metrics_generator_daemon.py --help."""

    model_config = SettingsConfigDict(
        env_prefix="TFT_GENERATOR_",
        env_file=env_file(),  # TFT_ENV_FILE, else ./.env
        extra="ignore",
        populate_by_name=True,
    )

    api_key: SecretStr | None = Field(default=None, validation_alias="TFT_API_KEY")
    insecure_no_auth: bool = False  # send no key, accept any on the control API
    daemon_url: str = "http://localhost:8000"
    servers: int = Field(default=20, ge=1, le=10_000)
    interval: float = Field(default=5.0, gt=0, le=3_600)  # wall seconds between ticks
    speed: float = Field(default=1.0, gt=0, le=100_000)  # simulated seconds per wall second
    backfill_hours: float = Field(default=24.0, ge=0, le=24 * 90)
    seed: int = Field(default=42, ge=0)
    scenario: Scenario = "healthy"
    scenario_servers: list[str] = Field(default_factory=list)
    control_host: str = "127.0.0.1"
    control_port: int = Field(default=8001, ge=0, le=65_535)  # 0: no control API
    batch_size: int = Field(default=2_000, ge=1, le=MAX_BATCH)
    buffer_records: int = Field(default=50_000, ge=1)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    # Idle keep-alive connections are closed after this; it must stay below the daemon's
    # (TFT_KEEPALIVE_S, uvicorn's timeout_keep_alive), or a request sent as the daemon
    # closes the idle connection meets "Connection reset by peer".
    keepalive_s: float = Field(default=2.0, ge=0, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Sinks: write into MongoDB or Elasticsearch (for an adapter to read) instead of
    # POSTing to the daemon; the collection and index are the adapters' example configs'.
    to_mongodb: str | None = None  # a mongodb:// URI
    mongodb_database: str = "monitoring"
    mongodb_collection: str = "server_metrics"
    to_elasticsearch: str | None = None  # an http(s):// URL
    elasticsearch_index: str = "server-metrics"

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("daemon_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.to_mongodb and self.to_elasticsearch:
            raise ValueError("choose one sink: --to-mongodb or --to-elasticsearch")
        sink = self.to_mongodb or self.to_elasticsearch
        if self.api_key is None and not self.insecure_no_auth and not sink:
            raise ValueError(
                "TFT_API_KEY is not set: run `python generate_api_key.py` (writes it to .env) "
                "or pass --insecure-no-auth for a daemon started with --insecure-no-auth"
            )
        if self.buffer_records < self.batch_size:
            raise ValueError("buffer_records must be at least batch_size")
        return self

    def key(self) -> str | None:
        """The API key in clear, for the X-API-Key header only; never log it."""
        return None if self.api_key is None else self.api_key.get_secret_value()
