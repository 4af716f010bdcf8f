"""The import layering: a production adapter needs neither the simulator nor the daemon,
the simulator does not reach into the daemon, and the shared /feed client (feedclient)
imports none of them. Checked on the source with ast, so a lazy import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = ("simfeed", "fleet", "fleet_model", "fleet_behaviours", "fleet_ticks")
RULES = {
    "adapters": ("inference", *SIMULATOR, "metrics_generator", "metrics_generator_daemon"),
    "simfeed": ("inference",),
    "feedclient": ("adapters", "simfeed", "inference"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in path names (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(RULES))
def test_packages_import_only_what_their_layer_allows(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert forbidden_imports(package, RULES[package]) == []


def test_the_scan_sees_lazy_and_from_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import simfeed.sender\n\nfrom inference import ingest\n")
    assert {"simfeed.sender", "inference", "inference.ingest"} <= imported_modules(source)


def test_feedclient_imports_only_the_stdlib_httpx_pydantic_and_the_contract() -> None:
    allowed = {"httpx", "pydantic", "orjson", "json", "data_contract", "feedclient"}
    third_party = set()
    for path in (ROOT / "feedclient").rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top not in allowed and top not in _stdlib():
                third_party.add(f"{path.name}: {module}")
    assert third_party == set()


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) | {"__future__"}
