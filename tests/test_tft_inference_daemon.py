"""The daemon's entry point: settings reach uvicorn (the keep-alive race of the demo)."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn

import tft_inference_daemon
from inference import app as app_module
from inference import loading


def test_the_idle_keep_alive_is_configurable_and_longer_than_the_generators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app_module, "create_app", lambda settings, model: "app")
    monkeypatch.setattr(loading, "load_forecaster", lambda settings: "model")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("TFT_API_KEY", "k" * 64)
    assert tft_inference_daemon.main([]) == 0
    assert seen["timeout_keep_alive"] == 15.0  # the generator keeps idle connections 2 s
    monkeypatch.setenv("TFT_KEEPALIVE_S", "30")
    assert tft_inference_daemon.main([]) == 0
    assert seen["timeout_keep_alive"] == 30.0
