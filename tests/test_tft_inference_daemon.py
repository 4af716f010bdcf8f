"""The daemon's entry point: settings reach uvicorn (the keep-alive race of the demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

import tft_inference_daemon
from inference import app as app_module
from inference import early_warning, loading


def test_the_idle_keep_alive_is_configurable_and_longer_than_the_generators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app_module, "create_app", lambda settings, model, warning: "app")
    monkeypatch.setattr(loading, "load_forecaster", lambda settings: "model")
    monkeypatch.setattr(early_warning, "warning_for", lambda forecaster, path: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("TFT_API_KEY", "k" * 64)
    assert tft_inference_daemon.main([]) == 0
    assert seen["timeout_keep_alive"] == 15.0  # the generator keeps idle connections 2 s
    monkeypatch.setenv("TFT_KEEPALIVE_S", "30")
    assert tft_inference_daemon.main([]) == 0
    assert seen["timeout_keep_alive"] == 30.0


@pytest.mark.parametrize("content", ["{not json", '{"web-01": 0}'])
def test_a_bad_core_counts_file_is_one_line_naming_it_before_anything_starts(
    content: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cores = tmp_path / "cores.json"
    cores.write_text(content)
    monkeypatch.setattr(loading, "load_forecaster", lambda settings: pytest.fail("loaded"))
    monkeypatch.setenv("TFT_API_KEY", "k" * 64)
    monkeypatch.setenv("TFT_SERVER_CORES_FILE", str(cores))
    assert tft_inference_daemon.main([]) == 2
    err = capsys.readouterr().err
    assert str(cores) in err and err.count("\n") == 1
