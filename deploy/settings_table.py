"""The README's configuration table, built from the processes' Settings classes.

    python deploy/settings_table.py            # print the table (markdown)
    python deploy/settings_table.py --check    # exit 1 when README.md's copy differs

The table sits in README.md between the SETTINGS-TABLE markers; tests run --check, so it
cannot drift from the code (the defaults and names come from the classes themselves).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- SETTINGS-TABLE -->", "<!-- /SETTINGS-TABLE -->"


def sources() -> list[tuple[str, type[BaseSettings]]]:
    """(who reads it, its Settings class), in the stack's order."""
    sys.path.insert(0, str(ROOT))
    from adapters.config import AdapterSettings
    from dashboard.settings import DashboardSettings
    from inference.settings import DaemonSettings
    from simfeed.settings import Settings as GeneratorSettings

    return [
        ("inference daemon", DaemonSettings),
        ("metrics generator daemon", GeneratorSettings),
        ("dashboard", DashboardSettings),
        ("adapters", AdapterSettings),
    ]


def env_name(model: type[BaseSettings], name: str) -> str:
    field = model.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    return (model.model_config.get("env_prefix", "") + name).upper()


def default_text(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    value: Any = field.get_default(call_default_factory=True)
    if value is None or value == [] or value == {}:
        return "(unset)"
    if isinstance(value, Path):
        value = value.relative_to(ROOT) if value.is_relative_to(ROOT) else value
    return f"`{value}`"


def table() -> str:
    """One row per variable: its default (the first reader's) and every process reading it."""
    found: dict[str, tuple[str, list[str]]] = {}
    for reader, model in sources():
        for name in model.model_fields:
            default, readers = found.setdefault(
                env_name(model, name), (default_text(model, name), [])
            )
            readers.append(reader)
    rows = ["| variable | default | read by |", "| --- | --- | --- |"]
    for variable, (default, readers) in found.items():
        rows.append(f"| `{variable}` | {default} | {', '.join(readers)} |")
    return "\n".join(rows) + "\n"


def readme_copy(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with README.md")
    args = parser.parse_args(argv)
    if not args.check:
        sys.stdout.write(table())
        return 0
    if readme_copy((ROOT / "README.md").read_text()) != table():
        sys.stderr.write("README.md's settings table is stale: paste deploy/settings_table.py\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
