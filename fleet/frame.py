"""Contract rows from simulated chunks: the frame the corpus and the live feed are made of.

The simulator works on (steps, servers) arrays; the data contract wants rows by server
then timestamp, with string server names and states. Offline steps have no rows, as a
server that is down sends nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

import data_contract as dc
from fleet import Array
from fleet.events import OFFLINE
from fleet.metrics import STATE_LABELS


def _strings(codes: Array, labels: Array) -> pd.Series:
    array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(labels))
    return array.cast(pa.string()).to_pandas()


def contract_frame(names: Array, chunks: list[dict[str, Array]]) -> pd.DataFrame:
    """Contract rows of the chunks, by server then timestamp; offline steps are dropped."""
    ns = np.concatenate([c["ns"] for c in chunks])
    keep = (np.concatenate([c["mode"] for c in chunks]) != OFFLINE).T.ravel()
    cols = {c: np.concatenate([x[c] for x in chunks]).T.ravel()[keep] for c in dc.METRIC_COLUMNS}
    stamps = np.tile(ns, len(names))[keep].view("datetime64[ns]")
    servers = np.repeat(np.arange(len(names)), len(ns))[keep]
    states = np.concatenate([c["state"] for c in chunks]).T.ravel()[keep]
    ids = {
        "timestamp": pd.DatetimeIndex(stamps).tz_localize("UTC"),
        "server_name": _strings(servers, names),
        "state": _strings(states, STATE_LABELS),
    }
    return pd.DataFrame(ids | cols, copy=False)
