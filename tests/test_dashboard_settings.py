"""dashboard/settings.py: environment names, defaults, and .env.example coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.settings import DashboardSettings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_bind_localhost() -> None:
    settings = DashboardSettings(_env_file=None)
    assert (settings.host, settings.port, settings.refresh_seconds) == ("127.0.0.1", 8501, 30)
    assert settings.daemon_url == "http://127.0.0.1:8000"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFT_API_KEY", "k")
    monkeypatch.setenv("TFT_DASHBOARD_DAEMON_URL", "http://d:1/")
    monkeypatch.setenv("TFT_DASHBOARD_BASIC_AUTH_USERS", '{"ops": "pw"}')
    settings = DashboardSettings(_env_file=None)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k"
    assert settings.daemon_url == "http://d:1"
    assert settings.basic_auth_users["ops"].get_secret_value() == "pw"


def test_blank_key_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFT_API_KEY", " ")
    assert DashboardSettings(_env_file=None).api_key is None


def test_every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    for name in DashboardSettings.model_fields:
        if name != "api_key":
            assert f"TFT_DASHBOARD_{name.upper()}=" in example, name


def test_key_from_secrets_toml_when_the_environment_has_none(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('api_key = "from-secrets"\n')
    built = DashboardSettings(_env_file=None, secrets_file=secrets)
    assert built.api_key is not None and built.api_key.get_secret_value() == "from-secrets"
    built = DashboardSettings(_env_file=None, secrets_file=secrets, api_key="from-env")
    assert built.api_key.get_secret_value() == "from-env"
    secrets.write_text('TFT_API_KEY = "upper"\n')
    built = DashboardSettings(_env_file=None, secrets_file=secrets)
    assert built.api_key.get_secret_value() == "upper"
    assert DashboardSettings(_env_file=None, secrets_file=tmp_path / "none").api_key is None


def test_bad_secrets_toml_names_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("api_key = [1]\n")
    with pytest.raises(ValueError, match="api_key must be a string"):
        DashboardSettings(_env_file=None, secrets_file=secrets)
    secrets.write_text("api_key = \n")
    with pytest.raises(ValueError, match="cannot read the secrets file"):
        DashboardSettings(_env_file=None, secrets_file=secrets)
