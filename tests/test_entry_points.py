"""[project.scripts]: every declared command resolves to a main() that a console script can
call without arguments (it reads sys.argv) and that returns the exit status."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
EXPECTED = {
    "tft-daemon",
    "tft-dashboard",
    "tft-generator-daemon",
    "tft-adapter-mongodb",
    "tft-adapter-elasticsearch",
}


def test_the_stack_s_processes_are_declared() -> None:
    assert EXPECTED <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_script_resolves_to_a_main_callable_without_arguments(name: str) -> None:
    module_name, _, attribute = SCRIPTS[name].partition(":")
    module = importlib.import_module(module_name)
    main = getattr(module, attribute)
    assert callable(main)
    signature = inspect.signature(main)
    required = [
        p
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert required == [], f"{SCRIPTS[name]} needs {required}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_script_s_module_is_installed(name: str) -> None:
    """The module is one that pyproject.toml ships (a py-module or within a package)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    module_name = SCRIPTS[name].partition(":")[0]
    package = module_name.rpartition(".")[0]
    assert module_name in setuptools["py-modules"] or package in setuptools["packages"]
