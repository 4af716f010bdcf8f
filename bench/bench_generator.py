"""Benchmark: wall-clock time of generate_fleet and of validate_schema on its frame.

Run: python -m bench.bench_generator [--servers 100 --days 30 --repeat 3] (make bench)
Prints a markdown table (best of --repeat runs) with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import data_contract as dc
from fleet import generate as mg


def best_of(repeat: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall-clock seconds of repeat calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def table(servers: int, days: float, repeat: int) -> str:
    """Time both steps and return the markdown report."""
    gen_s, fleet = best_of(repeat, lambda: mg.generate_fleet(servers, days, seed=42))
    val_s, (ok, errors) = best_of(repeat, lambda: dc.validate_schema(fleet.frame))
    if not ok:
        raise dc.ContractError(errors, "benchmark fleet")
    rows = len(fleet.frame)
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        f"generate_fleet({servers} servers, {days:g} days, {dc.STEP_SECONDS} s steps), "
        f"best of {repeat}",
        f"machine: {machine}; date: {dt.date.today().isoformat()}",
        "",
        "| step | rows | seconds | rows/s |",
        "|---|---:|---:|---:|",
        f"| generate_fleet | {rows:,} | {gen_s:.2f} | {rows / gen_s:,.0f} |",
        f"| validate_schema | {rows:,} | {val_s:.3f} | {rows / val_s:,.0f} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sys.stdout.write(table(args.servers, args.days, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
