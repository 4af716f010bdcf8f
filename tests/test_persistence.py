"""Saving and restoring the daemon's state: a restart needs no new warmup; a bad file is
moved aside and the daemon starts empty."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from inference.buffers import FleetBuffers
from inference.forecast import SeasonalNaiveForecaster
from inference.persistence import STATE_FILE, restore_state, save_state
from inference.service import InferenceService
from tests.daemon_helpers import T0, steps_body


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


# --- live accuracy -------------------------------------------------------------------


class PlusOne(SeasonalNaiveForecaster):
    """Labelled a TFT (accuracy is tracked for the TFT only): yesterday's values plus one."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.info = {**self.info, "kind": "tft", "name": name}

    def forecast(self, *args: Any) -> np.ndarray:
        return super().forecast(*args) + 1.0


def scoring(tmp_path: Path, name: str = "tft_stand_in", steps: int = 16) -> InferenceService:
    """A service whose forecaster is labelled a TFT (so accuracy is tracked), run step by
    step until forecasts at 30 minutes and 1 hour are scored, then saved."""
    first = tft_stand_in(name)
    first.feed(steps_body(["a", "b"], 289))
    for k in range(289, 289 + steps):
        first.run_pass()
        first.feed(steps_body(["a", "b"], 1, start=T0 + 300 * k, mem_used_pct=20.0 + k % 7))
    assert first.accuracy.report(np.arange(2))[2][:, 1].min() > 0
    save_state(first, tmp_path)
    return first


def tft_stand_in(name: str = "tft_stand_in") -> InferenceService:
    return InferenceService(forecaster=PlusOne(name))


def test_accuracy_scores_survive_a_restart(tmp_path: Path) -> None:
    first = scoring(tmp_path)
    second = tft_stand_in()
    assert restore_state(second, tmp_path)
    for before, after in zip(
        first.accuracy.state(2).values(), second.accuracy.state(2).values(), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    first_body = orjson.loads(first.predict(accuracy=True))["predictions"]
    assert orjson.loads(second.predict(accuracy=True))["predictions"] == first_body
    assert first_body["a"]["accuracy"]["scored"]["1h"] > 0


def test_another_model_starts_accuracy_afresh(tmp_path: Path) -> None:
    scoring(tmp_path)
    other = tft_stand_in("another_model")
    assert restore_state(other, tmp_path)
    assert other.accuracy.report(np.arange(2))[2].sum() == 0


def test_a_state_file_from_before_accuracy_tracking_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = scoring(tmp_path)
    path = tmp_path / STATE_FILE
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("acc_")}
    header = orjson.loads(str(arrays["header"]))
    del header["accuracy_format"]
    arrays["header"] = np.array(orjson.dumps(header).decode())
    np.savez(path, **arrays)
    second = tft_stand_in()
    with caplog.at_level(logging.INFO):
        assert restore_state(second, tmp_path)
    assert second.buffers.names == first.buffers.names and len(second.cache) == 2
    assert second.accuracy.report(np.arange(2))[2].sum() == 0
    assert "tracking restarts" in caplog.text


def test_a_damaged_accuracy_array_moves_the_file_aside(tmp_path: Path) -> None:
    scoring(tmp_path)
    path = tmp_path / STATE_FILE
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["acc_error"] = arrays["acc_error"][:, :1]
    np.savez(path, **arrays)
    second = tft_stand_in()
    assert not restore_state(second, tmp_path)
    assert len(second.buffers) == 0 and list(tmp_path.glob(f"{STATE_FILE}.bad-*"))


def test_forecasts_served_by_a_baseline_keep_their_labels(tmp_path: Path) -> None:
    first = scoring(tmp_path, steps=400)
    first.serve_better = True
    first.buffers.mark_dirty()
    first.run_pass()
    body = orjson.loads(first.predict())["predictions"]
    assert body["a"]["served_by"]["cpu_user_pct"] == "last_value"
    save_state(first, tmp_path)
    second = tft_stand_in()
    restore_state(second, tmp_path)
    assert orjson.loads(second.predict())["predictions"] == body
