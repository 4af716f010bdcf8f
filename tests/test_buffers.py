"""FleetBuffers as a whole: the windows it serves equal training's preparation, gaps
included; its parts are tested in tests/test_buffer_ring.py, test_buffer_ingest.py and
test_buffer_reads.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

import data_contract as dc
from fleet.generate import generate_fleet
from inference.buffers import FleetBuffers
from inference.ingest import STATE_CODES, Batch
from inference.windows import window_values
from training import dataset as tds


def test_windows_equal_training_preparation_with_gaps() -> None:
    frame = generate_fleet(n_servers=3, days=1.3, seed=2).frame
    gap = (frame.server_name == "ppml0001") & frame.timestamp.between(
        "2025-01-06T22:00", "2025-01-06T23:00"
    )
    frame = frame[~gap]
    seconds = (frame.timestamp - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    buffers = FleetBuffers()
    buffers.apply(
        Batch(
            names=frame.server_name.tolist(),
            seconds=seconds.to_numpy(np.int64),
            states=frame.state.map(STATE_CODES).to_numpy(np.int8),
            values=frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64),
        ),
        0.0,
    )
    rows = buffers.take_due()
    assert len(rows) == 3
    snapshot = buffers.snapshot(rows)
    values, states = window_values(snapshot)
    prepared = tds.prepare_frame(frame)
    for i, name in enumerate(snapshot.servers):
        server = prepared[prepared.server_name == name].set_index("time_idx").sort_index()
        window = server.loc[snapshot.last_step[i] - 287 : snapshot.last_step[i]]
        np.testing.assert_allclose(values[i], window[list(dc.METRIC_COLUMNS)], rtol=1e-6)
        assert [dc.VALID_STATES[s] for s in states[i]] == window.state.tolist()
    assert (states[snapshot.servers.index("ppml0001")] == STATE_CODES["offline"]).sum() >= 12


def test_the_parts_stay_importable_from_inference_buffers() -> None:
    """Other modules import these names from inference.buffers, whichever part holds them."""
    from inference import buffer_ingest, buffer_reads, buffer_ring, buffers

    assert buffers.ARRAYS is buffer_ring.ARRAYS and buffers.Applied is buffer_ingest.Applied
    assert buffers.AGGREGATION is dc.AGGREGATION and buffers.VALUE_CAP == 1e30
    assert issubclass(buffers.FleetBuffers, buffer_ingest.StepIngest)
    assert issubclass(buffers.FleetBuffers, buffer_reads.StepReads)
    assert all(hasattr(buffers, name) for name in buffers.__all__)
