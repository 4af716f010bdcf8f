"""Per-server rolling buffers at model-step resolution: raw ticks in, 5-minute steps out.

Steps: step = epoch_seconds // step_seconds (training's time_idx). A server's newest step
(its head) is open until a tick of a later step arrives, or until the wall clock passes
its end by close_grace_s (a source that sends one record per step is then forecast from
its newest step, not the one before). Every step before the head is closed. A forecast
reads the encoder_length closed steps ending at the server's origin (its last closed
step), and the early-warning evidence reads history_steps of them.

FleetBuffers is made of three parts, one module each:
- inference.buffer_ring: the storage (each server's ring of steps), the registry of
  servers, growth, the fleet limit and eviction;
- inference.buffer_ingest: apply(), ticks into their steps: duplicates, late and stale
  ticks, and the aggregation rule (data_contract.AGGREGATION);
- inference.buffer_reads: readiness, take_due() and snapshot() of the windows.
"""

from __future__ import annotations

import data_contract as dc
from inference.buffer_ingest import LAST, MAX, MEAN, VALUE_CAP, Applied, StepIngest
from inference.buffer_reads import StepReads
from inference.buffer_ring import ARRAYS, N_METRICS

__all__ = [
    "AGGREGATION",
    "ARRAYS",
    "LAST",
    "MAX",
    "MEAN",
    "N_METRICS",
    "VALUE_CAP",
    "Applied",
    "FleetBuffers",
]

AGGREGATION = dc.AGGREGATION  # the one rule, defined in the data contract


class FleetBuffers(StepIngest, StepReads):
    """The fleet's step buffers; not thread-safe (the daemon holds a lock around it).

    Methods taking now (epoch seconds) close a head step whose end + close_grace_s has
    passed; now=None closes steps only by later ticks."""
