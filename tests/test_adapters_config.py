"""adapters/config.py and adapters/state.py: the key's priority, config errors, cursor file."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters import state
from adapters.config import ConfigError, load_config, resolve_api_key, state_file_for
from adapters.elasticsearch_adapter import EsAdapterConfig
from adapters.mongodb_adapter import MongoAdapterConfig

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 12, 6, tzinfo=timezone.utc)


def test_api_key_priority_config_then_env_file_then_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TFT_API_KEY=from-file\n")
    assert (
        resolve_api_key("from-config", env_file=env_file, environment_key="from-env")[0]
        == "from-config"
    )
    assert resolve_api_key(None, env_file=env_file, environment_key="from-env")[0] == "from-file"
    env_file.write_text("TFT_API_KEY=\n")
    assert resolve_api_key(None, env_file=env_file, environment_key="from-env")[0] == "from-env"
    assert resolve_api_key(None, env_file=tmp_path / "none", environment_key=None) == (
        None,
        "nowhere",
    )


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("adapters/mongodb_adapter_config.json", MongoAdapterConfig),
        ("adapters/elasticsearch_adapter_config.json", EsAdapterConfig),
        ("adapters/elasticsearch_metricbeat_config.json", EsAdapterConfig),
    ],
)
def test_shipped_configs_load(path: str, model: type) -> None:
    assert load_config(ROOT / path, model).tft_daemon.url.startswith("http")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"database": {"database": "m"}, "batch_size": 0}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, MongoAdapterConfig)
    assert "database.collection" in str(caught.value) and "batch_size" in str(caught.value)
    path.write_text("{")
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(path, MongoAdapterConfig)


def test_state_file_is_per_adapter_and_config(tmp_path: Path) -> None:
    one = state_file_for(tmp_path, "mongodb", Path("a/x.json"))
    assert one.parent == tmp_path and one != state_file_for(tmp_path, "mongodb", Path("b/x.json"))
    assert one != state_file_for(tmp_path, "elasticsearch", Path("a/x.json"))


def test_cursor_round_trip_and_pruning(tmp_path: Path) -> None:
    cursor = state.Cursor()
    overlap = timedelta(seconds=60)
    cursor.mark([("a", AT), ("b", AT + timedelta(seconds=50))], overlap)
    cursor.mark([("c", AT + timedelta(seconds=100))], overlap)
    assert set(cursor.sent) == {"c", "b"} and cursor.start(overlap) == AT + timedelta(seconds=40)
    path = tmp_path / "s" / "cursor.json"
    state.save(path, cursor)
    assert state.load(path) == cursor and path.stat().st_mode & 0o077 == 0
    path.write_text("{")
    with pytest.raises(state.StateFileError, match="Move it aside"):
        state.load(path)
    assert state.load(tmp_path / "none.json") == state.Cursor()


def test_every_adapter_setting_is_in_env_example() -> None:
    from adapters.config import AdapterSettings

    example = (ROOT / ".env.example").read_text()
    for name in AdapterSettings.model_fields:
        assert re.search(rf"^#? ?{name.upper()}=", example, re.M), name


def test_a_bad_since_names_the_flag_and_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    from adapters import runner
    from adapters.mongodb_adapter import SPEC

    with pytest.raises(SystemExit) as exited:
        runner.parse_args(SPEC, ["--config", "c.json", "--export", "x", "--since", "yesterday"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "--since" in err and "not an ISO 8601 time" in err
