"""Saving and restoring the daemon's state: a restart needs no new warmup; a bad file is
moved aside and the daemon starts empty."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import orjson
import pytest

from inference.buffers import FleetBuffers
from inference.forecast import SeasonalNaiveForecaster
from inference.persistence import STATE_FILE, restore_state, save_state
from inference.service import InferenceService
from tests.daemon_helpers import steps_body


def service(encoder_length: int = 288, name: str | None = None) -> InferenceService:
    forecaster = SeasonalNaiveForecaster()
    if name:
        forecaster.info["name"] = name
    return InferenceService(forecaster=forecaster, buffers=FleetBuffers(encoder_length))


def warmed_up(tmp_path: Path) -> InferenceService:
    first = service()
    first.feed(steps_body(["a", "b"], 289))
    first.feed(steps_body(["young"], 20))
    assert first.run_pass() == 2
    save_state(first, tmp_path)
    return first


def test_restart_restores_buffers_and_forecasts(tmp_path: Path) -> None:
    first = warmed_up(tmp_path)
    second = service()
    assert restore_state(second, tmp_path)
    assert second.buffers.names == first.buffers.names
    for name in first.buffers.arrays:
        np.testing.assert_array_equal(second.buffers.view(name), first.buffers.view(name), name)
    first_body, second_body = orjson.loads(first.predict()), orjson.loads(second.predict())
    assert second_body["predictions"] == first_body["predictions"]
    assert second.run_pass() == 0  # nothing to redo: the forecasts came back too


def test_restored_state_keeps_taking_ticks(tmp_path: Path) -> None:
    warmed_up(tmp_path)
    second = service()
    restore_state(second, tmp_path)
    result = second.feed(steps_body(["a"], 290))
    # the restored late window (36 steps) knows steps 253-288; older ones are stale
    assert (result["applied"], result["duplicates"], result["stale"]) == (1, 36, 253)


def test_another_model_drops_the_saved_forecasts(tmp_path: Path) -> None:
    warmed_up(tmp_path)
    other = service(name="another_model")
    assert restore_state(other, tmp_path)
    assert other.cache == {} and other.run_pass() == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "incompatible"])
def test_a_bad_state_file_is_moved_aside(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    warmed_up(tmp_path)
    path = tmp_path / STATE_FILE
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"not an npz at all")
    fresh = service(encoder_length=100 if damage == "incompatible" else 288)
    with caplog.at_level(logging.ERROR):
        assert not restore_state(fresh, tmp_path)
    assert len(fresh.buffers) == 0 and not path.exists()
    aside = list(tmp_path.glob(f"{STATE_FILE}.bad-*"))
    assert len(aside) == 1 and "moved it to" in caplog.text
    if damage == "incompatible":
        assert "ring is 289, this daemon uses 101" in caplog.text


def test_saving_replaces_the_file_atomically(tmp_path: Path) -> None:
    first = warmed_up(tmp_path)
    first.feed(steps_body(["c"], 3))
    save_state(first, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]
    restored = service()
    restore_state(restored, tmp_path)
    assert restored.buffers.names == ["a", "b", "young", "c"]


def test_a_state_with_more_servers_than_allowed_is_moved_aside(tmp_path: Path) -> None:
    warmed_up(tmp_path)  # 3 servers
    small = InferenceService(
        forecaster=SeasonalNaiveForecaster(), buffers=FleetBuffers(max_servers=2)
    )
    assert not restore_state(small, tmp_path)
    assert len(small.buffers) == 0 and list(tmp_path.glob(f"{STATE_FILE}.bad-*"))
