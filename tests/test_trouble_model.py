"""The early-warning model (trouble/model.py): design terms, predict, save/load, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import risk
from trouble import evidence as ev
from trouble.model import INFO_FILE, WEIGHTS_FILE, WarningModel, WarningModelError, term_values

M = len(risk.RISK_METRICS)
TERMS = ("level", "above:yday_8h@0*tracked", "hinge:p90_8h@-1", "metric:mem_used_pct")


def evidence(n: int = 3, seed: int = 0) -> ev.Evidence:
    rng = np.random.default_rng(seed)
    features = {name: rng.normal(size=(n, M)) for name in ev.FEATURES}
    facts = {name: rng.normal(size=(n, M)) for name in ev.FACTS}
    facts["now"][0, 2] = np.nan  # one unknown metric
    return ev.Evidence(features, facts)


def model() -> WarningModel:
    t = len(TERMS)
    calibration = [(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.2, 0.9]))] * 2
    return WarningModel(
        TERMS,
        mean=np.zeros(t),
        scale=np.ones(t),
        coef=np.array([[1.0, 0.5, 2.0, -1.0], [0.5, 1.0, 1.0, 0.0]]),
        intercept=np.array([-2.0, -1.0]),
        calibration=calibration,
        info={"thresholds": {"critical": 0.5, "warning": 0.3, "watch": 0.1}},
    )


def test_terms() -> None:
    e = evidence()
    f = e.features
    assert np.array_equal(term_values(e, "yday_8h*tracked"), f["yday_8h"] * f["tracked"])
    crossed = term_values(e, "above:yday_8h@0*tracked")
    assert np.array_equal(crossed, np.where(f["yday_8h"] >= 0, f["tracked"], 0.0))
    assert np.array_equal(term_values(e, "hinge:p90_8h@-1"), np.maximum(f["p90_8h"] + 1, 0))
    one_hot = term_values(e, "metric:mem_used_pct")
    assert one_hot[:, risk.RISK_METRICS.index("mem_used_pct")].tolist() == [1.0] * 3
    assert one_hot.sum() == 3
    with pytest.raises(WarningModelError, match="unknown evidence feature 'nope'"):
        term_values(e, "nope")
    with pytest.raises(WarningModelError, match="unknown kind of term"):
        term_values(e, "below:level@0")


def test_predict_is_calibrated_ordered_and_nan_where_unknown() -> None:
    e, m = evidence(50), model()
    p = m.predict(e)
    assert p.shape == (50, M, 2)
    assert np.isnan(p[0, 2]).all() and not np.isnan(p[1:]).any()
    known = p[1:]
    assert (known[..., 1] >= known[..., 0]).all()  # 8 h never below 1 h
    assert (known >= 0).all() and (known <= 0.9).all()  # the calibration map's range
    raw = m.raw(e)[1:, :, 0]
    order = np.argsort(raw.ravel())
    assert (np.diff(known[..., 0].ravel()[order]) >= 0).all()  # monotone in the raw score


def test_save_and_load_round_trip(tmp_path) -> None:
    m, e = model(), evidence()
    m.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [INFO_FILE, WEIGHTS_FILE]
    info = json.loads((tmp_path / INFO_FILE).read_text())
    assert info["format_version"] == 1 and info["features"] == list(ev.FEATURES)
    assert info["horizons"] == {"1h": 12, "8h": 96} and info["terms"] == list(TERMS)
    loaded = WarningModel.load(tmp_path)
    assert loaded.terms == TERMS and loaded.info == m.info
    np.testing.assert_array_equal(loaded.predict(e), m.predict(e))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "format_version 99"),
        ({"features": ["level"]}, "evidence features"),
        ({"horizons": {"1h": 6, "8h": 96}}, "horizons"),
        ({"terms": ["level", "p95_8h"]}, "unknown evidence feature 'p95_8h'"),
    ],
)
def test_load_refuses_a_mismatching_file(tmp_path, change: dict, message: str) -> None:
    model().save(tmp_path)
    path = tmp_path / INFO_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(WarningModelError, match=message) as error:
        WarningModel.load(tmp_path)
    assert "python -m training.warning_fit" in str(error.value)


def test_load_refuses_weights_of_another_design(tmp_path) -> None:
    model().save(tmp_path)
    path = tmp_path / INFO_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | {"terms": ["level"]}))
    with pytest.raises(WarningModelError, match="coef must have shape"):
        WarningModel.load(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(WarningModelError, match="cannot read"):
        WarningModel.load(tmp_path)
    with pytest.raises(WarningModelError, match="cannot read"):
        WarningModel.load(tmp_path / "missing")
