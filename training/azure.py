"""Real Azure VM CPU traces (Azure Public Dataset V1, 2017): the contract importer and the
one train/held-out split.

The 100-VM sample (vm_cpu_100.parquet: vm_id, step 0..8003 at 300 s, cpu_avg_pct,
cpu_max_pct; SOURCE.txt beside it, CC BY 4.0, Cortez et al., SOSP 2017) gives each VM
two contract servers, both measuring cpu_user_pct (cpu_idle_pct = 100 - value; every
other column a neutral constant, training.nab's importer):

* ``azure-<vm_id>-avg``: the mean CPU of each 5 minutes, what a 5-minute scrape of a
  gauge (or the daemon's mean of its 5-second ticks) reports;
* ``azure-<vm_id>-max``: the peak of each 5 minutes, what a node-exporter-style peak
  (or a max of the daemon's ticks) sees. The max is what crosses 95 %: 90 of the 100
  VMs reach max >= 95 % at least once (1.9 % of steps), the mean only 38 (0.09 % of steps).

Time: the trace starts at step 0; its wall-clock start and time zone are not published.
Step 0 is placed at START, a Monday at midnight UTC in early January 2017 (the V1 trace
was collected in late 2016 / early 2017), so that weekday and weekend inputs fall on a
plausible week. The hour of day is unknown: the VMs' daily cycles keep their shape, but
"9 o'clock" in these frames is not 9 o'clock where the VMs ran.

The split (seeded, deterministic, the same for the trainer and the backtest), by VM:

* round(nab.HOLDOUT_FRACTION x VMs) VMs (30 of 100) drawn with
  numpy.random.default_rng(seed) are held out whole, both their series; the backtest
  scores them after their first nab.HISTORY_DAYS days (history for the encoder and the
  MASE scale);
* every other VM: its first 1 - nab.TAIL_FRACTION of steps trains (both series), the later
  nab.TAIL_FRACTION is held out (forecasts start there; the encoder may reach back).

    training_frame()   -> contract frame of the training parts only
    heldout_frames()   -> {"held-out VMs (mean)": HeldOut, "held-out VMs (max)": ...,
                           "held-out tails (mean)": ..., "held-out tails (max)": ...}
    heldout_vms()      -> the VM ids held out whole
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc
from training import nab
from training.nab import HeldOut, Split

DEFAULT_DIR = nab.DEFAULT_DIR.parent / "azure_vm_cpu_2017"
FILE_NAME = "vm_cpu_100.parquet"
START = pd.Timestamp("2017-01-02T00:00:00Z")  # assumed: a Monday (see the module doc)
TRACE_STEP = pd.Timedelta(seconds=300)  # the trace's sampling interval (SOURCE.txt)
SERIES = {"avg": "cpu_avg_pct", "max": "cpu_max_pct"}  # server suffix -> trace column
LABELS = {"avg": "mean", "max": "max"}  # server suffix -> name in the held-out parts
COLUMNS = ("vm_id", "step", *SERIES.values())
MEASURED = "cpu_user_pct"  # the one contract column with real data


def server_name(vm_id: str, kind: str) -> str:
    """The contract server of one VM's series (kind: "avg" or "max")."""
    return f"azure-{vm_id}-{kind}"


def read_trace(directory: Path = DEFAULT_DIR) -> pd.DataFrame:
    """The raw trace (COLUMNS), sorted by VM and step."""
    path = Path(directory) / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {FILE_NAME} in {directory}: put the Azure VM CPU sample there (see its "
            "SOURCE.txt), pass its folder (--azure-dir / --azure DIR), or leave it out (--no-azure)"
        )
    trace = pd.read_parquet(path)
    missing = sorted(set(COLUMNS) - set(trace.columns))
    if missing:
        raise ValueError(f"{path} lacks columns {missing}: expected {list(COLUMNS)}")
    trace = trace[list(COLUMNS)].astype({"vm_id": str})
    return trace.sort_values(["vm_id", "step"], ignore_index=True)


def load_series(directory: Path = DEFAULT_DIR) -> dict[str, pd.DataFrame]:
    """{server: contract frame} of both series of every VM, sorted by server."""
    out = {}
    for vm_id, rows in read_trace(directory).groupby("vm_id", sort=True):
        stamps = START + rows["step"].to_numpy(dtype=np.int64) * TRACE_STEP
        for kind, column in SERIES.items():
            values = pd.Series(rows[column].to_numpy(dtype=np.float64), index=stamps)
            name = server_name(str(vm_id), kind)
            out[name] = nab.series_to_contract(name, MEASURED, values)
    return dict(sorted(out.items()))


def vm_of(server: str) -> str:
    """The VM id of an azure-<vm_id>-<kind> server."""
    return server.removeprefix("azure-").rsplit("-", 1)[0]


def make_split(frames: dict[str, pd.DataFrame], seed: int = nab.SEED) -> Split:
    """The seeded split of these series by VM (see the module doc); depends only on the
    VM ids, the series' lengths and the seed."""
    vms = sorted({vm_of(s) for s in frames})
    count = int(round(nab.HOLDOUT_FRACTION * len(vms)))
    order = np.random.default_rng(seed).permutation(len(vms))
    held = {vms[i] for i in order[:count]}
    whole = tuple(s for s in sorted(frames) if vm_of(s) in held)
    tails = {}
    for s in sorted(frames):
        if vm_of(s) not in held:
            stamps = frames[s]["timestamp"].sort_values().reset_index(drop=True)
            tails[s] = stamps.iloc[int(np.floor((1.0 - nab.TAIL_FRACTION) * len(stamps)))]
    return Split(whole, tails)


def _split_of(directory: Path, seed: int) -> tuple[dict[str, pd.DataFrame], Split]:
    series = load_series(directory)
    return series, make_split(series, seed)


def _concat(frames: list[pd.DataFrame], source: str) -> pd.DataFrame:
    frame = pd.concat(frames, ignore_index=True)
    dc.require_valid(frame, source=source)
    return frame


def heldout_vms(directory: Path = DEFAULT_DIR, seed: int = nab.SEED) -> list[str]:
    """The VM ids held out whole (both their series), sorted."""
    _, split = _split_of(directory, seed)
    return sorted({vm_of(s) for s in split.whole})


def training_frame(directory: Path = DEFAULT_DIR, seed: int = nab.SEED) -> pd.DataFrame:
    """Contract-valid frame of the training parts: the early steps of both series of every
    VM not held out whole (only cpu_user_pct is real data)."""
    series, split = _split_of(directory, seed)
    parts = [series[s][series[s]["timestamp"] < start] for s, start in split.tail_start.items()]
    return _concat(parts, f"{directory} (training part)")


def heldout_frames(directory: Path = DEFAULT_DIR, seed: int = nab.SEED) -> dict[str, HeldOut]:
    """The evaluation parts, mean and max apart: the held-out VMs (scored after their first
    nab.HISTORY_DAYS) and the held-out tails of the others (scored from the tail start)."""
    series, split = _split_of(directory, seed)
    history = pd.Timedelta(days=nab.HISTORY_DAYS)
    whole = {s: series[s]["timestamp"].min() + history for s in split.whole}
    out = {}
    for part, cutoff in (("held-out VMs", whole), ("held-out tails", split.tail_start)):
        for kind, label in LABELS.items():
            chosen = {s: c for s, c in cutoff.items() if s.endswith(f"-{kind}")}
            if chosen:
                name = f"{part} ({label})"
                frame = _concat([series[s] for s in chosen], f"{directory} ({name})")
                out[name] = HeldOut(frame, dict.fromkeys(chosen, MEASURED), chosen)
    return out
