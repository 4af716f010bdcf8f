"""The training corpus: real series moved by whole weeks next to the generated fleet."""

from __future__ import annotations

import pandas as pd

import data_contract as dc
from tests.conftest import synthetic_fleet
from training.corpus import build_corpus


def test_real_series_keep_their_calendar_and_end_with_the_fleet() -> None:
    fleet = synthetic_fleet(n_servers=2, days=21)
    real = synthetic_fleet(n_servers=1, days=3).assign(server_name="cw-real")
    real["timestamp"] = real["timestamp"] - pd.Timedelta(days=3650)  # ten years earlier
    corpus = build_corpus(fleet, real, copies=2)
    assert dc.validate_schema(corpus) == (True, [])
    for name, weeks_back in (("cw-real", 0), ("cw-real~2", 1)):
        moved = corpus[corpus.server_name == name]["timestamp"].reset_index(drop=True)
        shift = moved - real["timestamp"].reset_index(drop=True)
        assert (shift % pd.Timedelta(days=7) == pd.Timedelta(0)).all()  # same hour and weekday
        gap = fleet["timestamp"].max() - moved.max()
        assert pd.Timedelta(days=7 * weeks_back) <= gap < pd.Timedelta(days=7 * (weeks_back + 1))
    assert corpus.server_name.nunique() == 4
