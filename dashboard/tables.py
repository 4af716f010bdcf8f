"""Pure functions from the daemon's JSON to rows and words (no Dash, no I/O).

Levels and thresholds come from risk.py, the one scheme of the stack.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from data_contract import REPORTED_HORIZONS
from risk import LEVEL_NAMES, RISK_METRICS

KEY_METRICS: tuple[str, ...] = ("cpu_idle_pct", "mem_used_pct", "disk_usage_pct", "load_average")
FORECAST_METRICS: tuple[str, ...] = ("mem_used_pct", "disk_usage_pct")
HORIZONS: tuple[str, ...] = tuple(REPORTED_HORIZONS)  # ("30m", "1h", "8h")
METHODS: tuple[str, ...] = ("tft", "last_value", "seasonal_naive")


def entries(predict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """/predict's per-server entries, by server name."""
    return predict.get("predictions") or {}


def environment_status(predict: dict[str, Any]) -> str:
    """The worst risk level of the fleet ("unknown" with no server scored yet)."""
    levels = [s.get("risk_level") for s in entries(predict).values()]
    ranks = [LEVEL_NAMES.index(lv) for lv in levels if lv in LEVEL_NAMES]
    return LEVEL_NAMES[max(ranks)] if ranks else "unknown"


def readiness(predict: dict[str, Any]) -> str:
    """'N/M servers ready', with the fleet's warmup progress while it warms up."""
    fleet = predict.get("fleet", {})
    total, ready = fleet.get("servers", 0), fleet.get("ready", 0)
    text = f"{ready}/{total} servers ready"
    if total and ready < total:
        text += f" (warming up {fleet.get('warmup_progress', 0):.0f} %)"
    return text


def model_text(model: dict[str, Any]) -> tuple[str, bool]:
    """A line naming the model that answers (kind, name, trained range; for a fallback
    its reason), and whether it is a fallback (not a TFT)."""
    kind, name = model.get("kind", "unknown"), model.get("name") or "unnamed"
    parts = [kind, name]
    trained = model.get("trained_on")
    if isinstance(trained, dict) and {"start", "end"} <= trained.keys():
        trained = (trained["start"][:10], trained["end"][:10])
    if isinstance(trained, list | tuple) and len(trained) == 2:
        parts.append(f"trained on {trained[0]} to {trained[1]}")
    elif trained:
        parts.append(f"trained on {trained}")
    parts += [str(model[k]) for k in ("note", "reason") if model.get(k)]
    error = (model.get("last_pass") or {}).get("error")
    if error:
        parts.append(f"last forecast pass failed: {error}")
    return " · ".join(parts), kind != "tft"


def risk_distribution(predict: dict[str, Any]) -> dict[str, int]:
    """Servers per risk level, in risk.py's order (servers without a score left out)."""
    counts = dict.fromkeys(LEVEL_NAMES, 0)
    for server in entries(predict).values():
        if server.get("risk_level") in counts:
            counts[server["risk_level"]] += 1
    return counts


def _by_risk(predict: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    servers = entries(predict).items()
    return sorted(servers, key=lambda item: (-(item[1].get("risk_score") or 0), item[0]))


def top_risk_rows(predict: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    """The riskiest servers with a score above 0, worst first, with their top factor."""
    rows = []
    for name, server in _by_risk(predict)[:limit]:
        if not server.get("risk_score"):
            break
        factors = server.get("risk_factors") or []
        rows.append(
            {
                "server": name,
                "risk_score": server["risk_score"],
                "risk_level": server.get("risk_level"),
                "reason": factor_text(factors[0]) if factors else "",
            }
        )
    return rows


def _num(value: Any) -> float | None:
    return round(float(value), 1) if isinstance(value, int | float) else None


def server_link(name: str) -> str:
    """A markdown link to the server's page; the name escaped for markdown and the URL."""
    text = re.sub(r"([\\`*_\[\]()<>#!|])", r"\\\1", name)
    return f"[{text}](/server?name={quote(name, safe='')})"


def server_rows(predict: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per server for the server table (worst first)."""
    rows = []
    for name, s in _by_risk(predict):
        current = s.get("current") or {}
        row: dict[str, Any] = {
            "server": name,
            "link": server_link(name),
            "state": s.get("state"),
            "forecast_status": s.get("forecast_status"),
            "risk_score": s.get("risk_score"),
            "risk_level": s.get("risk_level"),
        }
        row |= {m: _num(current.get(m)) for m in KEY_METRICS}
        for horizon in ("30m", "8h"):
            p50 = s.get(f"predictions_{horizon}") or {}
            row |= {f"{m}_{horizon}": _num(p50.get(m)) for m in FORECAST_METRICS}
        rows.append(row)
    return rows


def duration_text(minutes: float) -> str:
    """'2 h 10 min', '35 min', '3 h'."""
    hours, rest = divmod(int(round(minutes)), 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def factor_text(factor: dict[str, Any]) -> str:
    """A risk factor in words, e.g. 'mem_used_pct forecast to exceed 95 in about 2 h 10 min',
    or from the early-warning estimate its reason and probabilities, e.g. 'CPU reached 97%
    yesterday at 14:05 UTC (critical within 1 h: 12 %, within 8 h: 64 %)'."""
    if factor.get("reason"):
        return f"{factor['reason']} ({probability_text(factor)})"
    metric, threshold = factor.get("metric", "?"), factor.get("threshold")
    severity, basis = factor.get("severity", ""), factor.get("basis")
    limit = f"{threshold:g}" if isinstance(threshold, int | float) else "?"
    if basis == "current":
        return f"{metric} is at {factor.get('value')}, at or above its {severity} level {limit}"
    when = duration_text(factor.get("eta_minutes") or 0)
    if basis == "p90":
        return f"{metric} may exceed {limit} ({severity}, pessimistic p90) in about {when}"
    return f"{metric} forecast to exceed {limit} ({severity}) in about {when}"


def probability_text(factor: dict[str, Any]) -> str:
    """'critical within 1 h: 12 %, within 8 h: 64 %' of an estimate's risk factor."""
    p1, p8 = factor.get("probability_1h"), factor.get("probability_8h")
    if not isinstance(p1, int | float) or not isinstance(p8, int | float):
        return "no probability"
    return f"critical within 1 h: {100 * p1:.0f} %, within 8 h: {100 * p8:.0f} %"


def trouble_text(trouble: dict[str, Any]) -> str:
    """A server's most likely trouble (/predict's trouble), e.g. 'cpu_used_pct: critical
    within 1 h: 12 %, within 8 h: 64 %'."""
    chances = {"probability_1h": trouble.get("1h"), "probability_8h": trouble.get("8h")}
    return f"{trouble.get('metric', '?')}: {probability_text(chances)}"


def alert_rows(alerts: dict[str, Any]) -> list[dict[str, Any]]:
    """The /alerts list as table rows (the daemon already sorts it, worst first)."""
    rows = []
    for alert in alerts.get("alerts", []):
        factors = alert.get("factors") or []
        reason = "; ".join(factor_text(f) for f in factors)
        if alert.get("kind") == "silent":
            reason = "stopped reporting"
        rows.append(
            {
                "level": alert.get("level"),
                "server": alert.get("server"),
                "risk_score": alert.get("risk_score"),
                "reason": reason,
                "forecast_origin": alert.get("forecast_origin"),
                "since": alert.get("since"),
                "last_seen": alert.get("last_seen"),
            }
        )
    return rows


def heatmap_points(predict: dict[str, Any], limit: int) -> tuple[list[str], list[list[int]], int]:
    """Servers (worst first, at most limit), their points per risk metric (0 where the
    metric has no factor) and the number of servers left out."""
    chosen = _by_risk(predict)
    names = [name for name, _ in chosen[:limit]]
    z = []
    for _, server in chosen[:limit]:
        points = {f["metric"]: f.get("points", 0) for f in server.get("risk_factors") or []}
        z.append([points.get(m, 0) for m in RISK_METRICS])
    return names, z, max(0, len(chosen) - limit)


def accuracy_rows(predict: dict[str, Any]) -> list[dict[str, Any]]:
    """Fleet-wide mean MASE per horizon and method over every (server, metric) scored,
    from /predict?accuracy=true; [] when nothing is scored yet."""
    lists = _mase_lists([s.get("accuracy") for s in entries(predict).values()])
    rows = []
    for horizon in HORIZONS:
        row: dict[str, Any] = {"horizon": horizon}
        for method in METHODS:
            row[method] = _mean(
                [v for (h, m, _), vs in lists.items() if (h, m) == (horizon, method) for v in vs]
            )
        if any(row[m] is not None for m in METHODS):
            rows.append(row)
    return rows


def accuracy_metric_columns() -> list[str]:
    """The per-metric accuracy table's value columns: "<horizon> <method>"."""
    return [f"{h} {m}" for h in HORIZONS for m in METHODS]


def accuracy_metric_rows(blocks: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Mean MASE per metric (rows) and horizon x method (columns) over the given
    servers' accuracy blocks (one block: one server); metrics never scored are left out."""
    lists = _mase_lists(blocks)
    metrics = sorted({metric for _, _, metric in lists})
    rows = []
    for metric in metrics:
        row: dict[str, Any] = {"metric": metric}
        for h in HORIZONS:
            for m in METHODS:
                row[f"{h} {m}"] = _mean(lists.get((h, m, metric), []))
        rows.append(row)
    return rows


def scored_servers(predict: dict[str, Any]) -> list[str]:
    """The servers with at least one scored forecast, by name."""
    return sorted(
        name
        for name, server in entries(predict).items()
        if any((server.get("accuracy") or {}).get("scored", {}).values())
    )


def _mase_lists(blocks: list[dict[str, Any] | None]) -> dict[tuple[str, str, str], list[float]]:
    """Every scored MASE of the blocks, by (horizon, method, metric)."""
    lists: dict[tuple[str, str, str], list[float]] = {}
    for block in blocks:
        for horizon in HORIZONS:
            mase = ((block or {}).get(horizon) or {}).get("mase") or {}
            for method in METHODS:
                for metric, value in (mase.get(method) or {}).items():
                    if value is not None:
                        lists.setdefault((horizon, method, metric), []).append(value)
    return lists


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None
