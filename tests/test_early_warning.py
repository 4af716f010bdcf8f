"""The early-warning estimate in the daemon (inference/early_warning.py): loaded with the
forecaster's artifact, fed from 27 h of history in the pass, its levels scored again from
the latest tick, restored with the forecasts, and shown by /predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

import risk
from inference import early_warning as ew
from inference import views
from inference.buffers import FleetBuffers
from inference.forecast import SeasonalNaiveForecaster
from inference.ingest import parse_feed
from inference.persistence import restore_state, save_state
from inference.service import InferenceService
from inference.views import predict_parts
from tests.daemon_helpers import T0, make_record
from trouble import evidence
from trouble.model import WarningModel

STEPS = evidence.HISTORY_STEPS + 4  # a little more history than the evidence reads
SPIKE = range(STEPS - 288 + 24, STEPS - 288 + 36)  # yesterday, 2-3 h after the origin


def yesterday_model() -> WarningModel:
    """P(critical within 8 h) high where yesterday's coming 8 h crossed critical."""
    calibration = [(np.array([0.0, 1.0]), np.array([0.0, 1.0]))] * 2
    return WarningModel(
        ("above:yday_8h@0",),
        mean=np.zeros(1),
        scale=np.ones(1),
        coef=np.array([[0.0], [8.0]]),
        intercept=np.array([-6.0, -4.0]),
        calibration=calibration,
        info={"thresholds": {"critical": 0.5, "warning": 0.3, "watch": 0.1}},
    )


def fleet_body() -> bytes:
    """'daily' reached 99 % CPU yesterday 2-3 h after now's clock time; 'flat' never did."""
    records = []
    for k in range(STEPS):
        idle = 1.0 if k in SPIKE else 70.0
        records.append(make_record("daily", T0 + 300 * k, cpu_idle_pct=idle))
        records.append(make_record("flat", T0 + 300 * k))
    return orjson.dumps(records)


def served(warning: WarningModel | None = None) -> InferenceService:
    buffers = FleetBuffers(history_steps=ew.HISTORY_STEPS)
    service = InferenceService(
        forecaster=SeasonalNaiveForecaster(), buffers=buffers, warning=warning
    )
    service.feed(fleet_body())
    assert service.run_pass() == 2
    return service


def entries(service: InferenceService) -> dict:
    return orjson.loads(b"".join(predict_parts(service)))["predictions"]


def test_the_pass_scores_levels_from_the_estimate_with_reasons() -> None:
    got = entries(served(yesterday_model()))
    daily, flat = got["daily"], got["flat"]
    assert daily["risk_level"] == "warning" and flat["risk_level"] == "healthy"
    factor = daily["risk_factors"][0]
    assert factor["metric"] == "cpu_used_pct" and factor["probability_8h"] > 0.9
    assert "CPU reached 99% yesterday at" in factor["reason"]
    assert daily["trouble"]["metric"] == "cpu_used_pct" and daily["trouble"]["8h"] > 0.9
    assert flat["risk_factors"] == [] and flat["trouble"]["8h"] < 0.05


def test_without_an_estimate_the_rules_of_risk_py_score_the_band() -> None:
    daily = entries(served())["daily"]
    assert "trouble" not in daily
    assert all("probability_8h" not in f for f in daily["risk_factors"])


def test_a_critical_tick_between_passes_is_critical_at_once() -> None:
    service = served(yesterday_model())
    now = T0 + 300 * STEPS + 10
    service.feed(orjson.dumps([make_record("flat", now, cpu_idle_pct=2.0)]))
    assert service.rescore() == 1
    flat = entries(service)["flat"]
    assert flat["risk_level"] == "critical" and flat["risk_score"] == risk.MAX_SCORE
    assert flat["risk_factors"][0]["reason"] == "CPU is at 98% now (critical 95%)"


def test_a_restart_restores_the_estimates_levels(tmp_path: Path) -> None:
    first = served(yesterday_model())
    before = entries(first)
    save_state(first, tmp_path)
    again = InferenceService(
        forecaster=SeasonalNaiveForecaster(),
        buffers=FleetBuffers(history_steps=ew.HISTORY_STEPS),
        warning=yesterday_model(),
    )
    assert restore_state(again, tmp_path)
    after = entries(again)
    for name in ("daily", "flat"):
        assert after[name]["risk_level"] == before[name]["risk_level"]
        assert after[name]["trouble"] == before[name]["trouble"]


def test_history_is_nan_before_the_first_tick() -> None:
    buffers = FleetBuffers(history_steps=ew.HISTORY_STEPS)
    body = [make_record("young", T0 + 300 * k) for k in range(300)]
    buffers.apply(parse_feed(orjson.dumps(body)), 0.0)
    past = ew.history(buffers, np.array([0]), None)
    assert past.shape == (1, ew.HISTORY_STEPS, 14)
    assert np.isnan(past[0, :25]).all() and not np.isnan(past[0, 25:]).any()


def test_an_artifact_without_an_estimate_has_none_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "tft_model_x"
    artifact.mkdir()
    (artifact / "config.json").write_text("{}")
    assert ew.load_warning(artifact) is None
    yesterday_model().save(artifact)
    assert isinstance(ew.load_warning(artifact), WarningModel)
    (artifact / "warning.safetensors").write_bytes(b"garbage")
    with pytest.raises(ew.WarningLoadError, match="tft_model_x"):
        ew.load_warning(artifact)
    shutil.rmtree(artifact)


def test_the_model_block_says_what_sets_the_levels() -> None:
    assert ew.warning_info(None, "m")["kind"] == "risk_rules"
    info = ew.warning_info(yesterday_model(), "m")
    assert info["kind"] == "calibrated_estimate" and info["thresholds"]["warning"] == 0.3


def test_predict_says_which_scheme_set_the_levels() -> None:
    with_estimate = orjson.loads(b"".join(predict_parts(served(yesterday_model()))))
    assert with_estimate["model"]["early_warning"]["kind"] == "calibrated_estimate"
    rules = orjson.loads(b"".join(predict_parts(served())))
    assert rules["model"]["early_warning"]["kind"] == "risk_rules"


def test_alerts_carry_the_probabilities_and_the_reason() -> None:
    service = served(yesterday_model())
    service.clock = lambda: T0 + 300 * STEPS  # the fleet is still reporting
    found = views.alerts(service, "warning")["alerts"]
    assert [a["server"] for a in found] == ["daily"]
    factor = found[0]["factors"][0]
    assert factor["probability_8h"] > 0.9 and "yesterday at" in factor["reason"]
