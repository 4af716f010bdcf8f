"""Saving and restoring the daemon's state: a restart needs no new warmup; a bad file is
moved aside and the daemon starts empty."""

from __future__ import annotations

import logging
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from inference import persistence, views
from inference.buffers import FleetBuffers
from inference.forecast import SeasonalNaiveForecaster
from inference.ingest import parse_feed
from inference.persistence import STATE_FILE, restore_state, save_state
from inference.service import InferenceService
from inference.wal import WriteAheadLog
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
    first_body = orjson.loads(views.predict(first))["predictions"]
    assert orjson.loads(views.predict(second))["predictions"] == first_body
    assert second.run_pass() == 0  # nothing to redo: the forecasts came back too


def test_restored_state_keeps_taking_ticks(tmp_path: Path) -> None:
    warmed_up(tmp_path)
    second = service()
    restore_state(second, tmp_path)
    result = second.feed(steps_body(["a"], 290))
    # the restored late window (36 steps) knows steps 253-288; older ones are stale
    assert (result.applied, result.duplicates, result.stale) == (1, 36, 253)


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
        assert "encoder_length is 288, this daemon uses 100" in caplog.text


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
    first_body = orjson.loads(views.predict(first, accuracy=True))["predictions"]
    assert orjson.loads(views.predict(second, accuracy=True))["predictions"] == first_body
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
    body = orjson.loads(views.predict(first))["predictions"]
    assert body["a"]["served_by"]["cpu_user_pct"] == "last_value"
    save_state(first, tmp_path)
    second = tft_stand_in()
    restore_state(second, tmp_path)
    assert orjson.loads(views.predict(second))["predictions"] == body


# --- writing the file ----------------------------------------------------------------


def test_saves_leave_one_private_file_and_no_temporaries(tmp_path: Path) -> None:
    (tmp_path / f".{STATE_FILE}.tmp").mkdir()  # the old fixed temporary name, taken
    first = warmed_up(tmp_path)
    save_state(first, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{STATE_FILE}.tmp", STATE_FILE]
    assert stat.S_IMODE((tmp_path / STATE_FILE).stat().st_mode) == 0o600


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = warmed_up(tmp_path)
    before = (tmp_path / STATE_FILE).read_bytes()
    first.feed(steps_body(["c"], 3))

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_state(first, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]
    assert (tmp_path / STATE_FILE).read_bytes() == before


def test_temporaries_of_a_crashed_save_are_removed_on_start(tmp_path: Path) -> None:
    warmed_up(tmp_path)
    (tmp_path / f".{STATE_FILE}.k3j2h1.tmp").write_bytes(b"half a file")
    assert restore_state(service(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


def test_concurrent_saves_do_not_interleave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = warmed_up(tmp_path)
    inside, most, real_collect = [], [], persistence.collect

    def slow_collect(*args: Any) -> dict[str, np.ndarray]:
        inside.append(1)
        most.append(len(inside))
        time.sleep(0.05)  # a window for the other save to step in
        try:
            return real_collect(*args)
        finally:
            inside.pop()

    monkeypatch.setattr(persistence, "collect", slow_collect)
    savers = [threading.Thread(target=save_state, args=(first, tmp_path)) for _ in range(2)]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join(30)
    assert most == [1, 1] and not any(s.is_alive() for s in savers)
    assert restore_state(service(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


# --- formats -------------------------------------------------------------------------


def rewrite(path: Path, drop: tuple[str, ...] = (), **header: Any) -> dict[str, Any]:
    """Rewrite a state file with numpy: arrays dropped, header fields set; the header."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    fields = {**orjson.loads(str(arrays["header"])), **header}
    arrays["header"] = np.array(orjson.dumps(fields).decode())
    np.savez(path, **arrays)
    return fields


def with_numpy_names(path: Path, names: list[str]) -> None:
    """Store the names as files before server_names did: a fixed-width numpy string array."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "server_names"}
    arrays["names"] = np.array(names, dtype=str)
    np.savez(path, **arrays)


def test_a_format_1_file_is_migrated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = warmed_up(tmp_path)
    with_numpy_names(tmp_path / STATE_FILE, first.buffers.names)
    header = rewrite(tmp_path / STATE_FILE, ("buf_received", "buf_done"), format=1)
    second = service()
    with caplog.at_level(logging.INFO):
        assert restore_state(second, tmp_path)
    assert "migrated state file from format 1 to 2" in caplog.text
    assert second.buffers.names == first.buffers.names and len(second.cache) == 2
    for name in set(first.buffers.arrays) - {"received", "done"}:
        np.testing.assert_array_equal(second.buffers.view(name), first.buffers.view(name), name)
    assert (second.buffers.view("received") == int(header["saved_at"])).all()
    assert (second.buffers.view("done") == -1).all()  # its ARRAYS fill value
    assert not list(tmp_path.glob(f"{STATE_FILE}.bad-*"))


def test_a_file_from_a_newer_daemon_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warmed_up(tmp_path)
    rewrite(tmp_path / STATE_FILE, format=persistence.FORMAT + 1)
    fresh = service()
    with caplog.at_level(logging.ERROR):
        assert not restore_state(fresh, tmp_path)
    assert len(fresh.buffers) == 0 and list(tmp_path.glob(f"{STATE_FILE}.bad-*"))
    assert f"has format {persistence.FORMAT + 1}" in caplog.text
    assert "a newer daemon wrote it" in caplog.text


# --- the write-ahead log -------------------------------------------------------------


def feed_logged(svc: InferenceService, wal: WriteAheadLog, body: bytes) -> int:
    """Apply a body as the daemon does with a log: appended and applied under the lock."""
    batch, now = parse_feed(body), time.time()
    with svc.lock:
        wal.append(batch, now)
        svc.buffers.apply(batch, now)
    return len(batch)


def crashed_copy(tmp_path: Path) -> Path:
    """What is on disk now (as after kill -9: nothing closed, nothing saved)."""
    return Path(shutil.copytree(tmp_path / "live", tmp_path / "crashed"))


@pytest.mark.parametrize("truncated", [True, False])  # False: crashed before truncate()
def test_the_log_restores_what_came_after_the_snapshot_exactly_once(
    tmp_path: Path,
    truncated: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = tmp_path / "live"
    first, wal = service(), WriteAheadLog(live / "wal")
    feed_logged(first, wal, steps_body(["a", "b"], 100))
    if not truncated:
        monkeypatch.setattr(wal, "truncate", lambda before: 0)
    save_state(first, live, wal)
    after = feed_logged(first, wal, steps_body(["a", "c"], 60, start=T0 + 300 * 100))
    after += feed_logged(first, wal, steps_body(["b"], 5, start=T0 + 300 * 95))  # 5 dupes
    crashed = crashed_copy(tmp_path)
    assert len(list((crashed / "wal").glob("*.wal"))) == (1 if truncated else 2)
    second = service()
    with caplog.at_level(logging.INFO):
        assert restore_state(second, crashed, WriteAheadLog(crashed / "wal"))
    assert f"replayed {after} records in 2 batches from the write-ahead log" in caplog.text
    assert second.buffers.names == first.buffers.names == ["a", "b", "c"]
    assert (
        int(second.buffers.view("count").sum())
        == 2 * 100 + 2 * 60
        == int(first.buffers.view("count").sum())
    )
    for name in set(first.buffers.arrays) - {"dirty"}:
        np.testing.assert_array_equal(second.buffers.view(name), first.buffers.view(name), name)
    wal.close()


def test_without_a_state_file_the_whole_log_is_replayed(tmp_path: Path) -> None:
    live = tmp_path / "live"
    first, wal = service(), WriteAheadLog(live / "wal")
    feed_logged(first, wal, steps_body(["a"], 30))
    wal.rotate()  # segments below the rotation count too without a snapshot
    feed_logged(first, wal, steps_body(["b"], 20))
    crashed = crashed_copy(tmp_path)
    second = service()
    assert restore_state(second, crashed, WriteAheadLog(crashed / "wal"))
    assert second.buffers.names == ["a", "b"]
    np.testing.assert_array_equal(second.buffers.view("count"), first.buffers.view("count"))
    assert second.buffers.view("dirty").all()  # forecast afresh
    wal.close()


def test_an_empty_directory_restores_nothing(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    assert not restore_state(service(), tmp_path, wal)
    wal.close()


def test_an_alert_level_keeps_its_since_across_a_restart(tmp_path: Path) -> None:
    first = warmed_up(tmp_path)
    row = first.buffers.names.index("a")
    first.cache[row].since = 1_700_000_000.0  # the level began long before the restart
    save_state(first, tmp_path)
    second = service()
    assert restore_state(second, tmp_path)
    assert second.cache[row].since == 1_700_000_000.0
    assert second.cache[row].assessment.level == first.cache[row].assessment.level


# --- names and files that fail to load (issue 18, item 4) ---------------------------------


def test_every_name_round_trips_exactly(tmp_path: Path) -> None:
    """Names were saved as a fixed-width numpy string array, which drops a trailing NUL:
    "web" and "web\\x00" came back as one name and the restore failed (a broadcast error)."""
    first = service()
    names = ["web", "wéb 01", "a,b", "サーバー", "x" * 253]
    first.feed(steps_body(names, 3))
    first.buffers.register(["web\x00"])  # as an older daemon's log may still bring it back
    save_state(first, tmp_path)
    second = service()
    assert restore_state(second, tmp_path)
    assert second.buffers.names == [*names, "web\x00"]


def test_a_file_from_before_the_exact_names_still_loads(tmp_path: Path) -> None:
    first = warmed_up(tmp_path)
    with_numpy_names(tmp_path / STATE_FILE, first.buffers.names)
    second = service()
    assert restore_state(second, tmp_path)
    assert second.buffers.names == first.buffers.names and len(second.cache) == 2


def test_a_file_whose_names_collided_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file the issue's daemon wrote: two servers, whose saved names are equal."""
    warmed_up(tmp_path)  # a, b, young
    path = tmp_path / STATE_FILE
    with_numpy_names(path, ["web", "web\x00", "young"])  # saved as "web", "web"
    fresh = service()
    with caplog.at_level(logging.ERROR):
        assert not restore_state(fresh, tmp_path)
    assert len(fresh.buffers) == 0 and list(tmp_path.glob(f"{STATE_FILE}.bad-*"))
    assert "moved it to" in caplog.text


def test_a_file_that_fails_while_loading_is_moved_aside_and_the_daemon_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only StateFileError was caught: an error while loading the arrays (here a cached
    forecast of a row the file does not hold) stopped the daemon from starting."""
    warmed_up(tmp_path)
    path = tmp_path / STATE_FILE
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["cache_rows"] = np.array([0, 7], dtype=np.int64)  # 3 servers: no row 7
    np.savez(path, **arrays)
    fresh = service()
    with caplog.at_level(logging.ERROR):
        assert not restore_state(fresh, tmp_path)
    assert len(fresh.buffers) == 0 and fresh.cache == {} and not path.exists()
    assert len(list(tmp_path.glob(f"{STATE_FILE}.bad-*"))) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "moved it to" in errors[0].getMessage()
    assert fresh.feed(steps_body(["a"], 2)).applied == 2  # and it works


@pytest.mark.parametrize("history", [324, 288])
def test_a_file_saved_with_another_ring_keeps_every_step_both_rings_hold(
    tmp_path: Path, history: int
) -> None:
    """An upgrade that keeps 3 h more history (the early-warning evidence), or a
    downgrade: no warm-up is lost, and the encoder windows are the same."""
    first = InferenceService(
        forecaster=SeasonalNaiveForecaster(), buffers=FleetBuffers(288, history_steps=612 - history)
    )
    first.feed(steps_body(["a", "b"], 330))
    first.feed(steps_body(["young"], 20))
    save_state(first, tmp_path)
    second = InferenceService(
        forecaster=SeasonalNaiveForecaster(), buffers=FleetBuffers(288, history_steps=history)
    )
    assert restore_state(second, tmp_path)
    assert second.buffers.ring == history + 1 != first.buffers.ring
    assert second.buffers.ready().tolist() == first.buffers.ready().tolist() == [1, 1, 0]
    rows = np.arange(3)
    for name in ("agg", "count", "state"):
        np.testing.assert_array_equal(
            getattr(second.buffers.snapshot(rows), name),
            getattr(first.buffers.snapshot(rows), name),
        )
    shorter = min(first.buffers.history, history)
    np.testing.assert_array_equal(
        second.buffers.snapshot(rows, length=shorter).agg,
        first.buffers.snapshot(rows, length=shorter).agg,
    )
