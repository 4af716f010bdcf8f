"""The systemd units of deploy/systemd: rendered with this checkout's real paths, they pass
`systemd-analyze verify` together; each has the ordering and hardening keys; each ExecStart
runs a script of this repo with flags that script accepts; install.sh installs into given
folders, idempotently, and --dry-run changes nothing.

User=tft is rendered as is: `systemd-analyze verify` does not check that the user exists
(it only resolves units and the ExecStart executable), so no test-only user is needed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_deploy_docker import unknown_flags

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location(
    "render_units", ROOT / "deploy" / "systemd" / "render_units.py"
)
assert _SPEC is not None and _SPEC.loader is not None
render_units = importlib.util.module_from_spec(_SPEC)
sys.dont_write_bytecode, _WRITE = True, sys.dont_write_bytecode  # no __pycache__ in deploy/
_SPEC.loader.exec_module(render_units)
sys.dont_write_bytecode = _WRITE
UNITS = sorted(p.name for p in render_units.templates())
DAEMON = "tft-inference-daemon.service"
EXPECTED = {
    DAEMON,
    "tft-mongodb-adapter.service",
    "tft-elasticsearch-adapter.service",
    "tft-dashboard.service",
    "tft-metrics-generator.service",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
}
WRITES_STATE = {DAEMON, "tft-mongodb-adapter.service", "tft-elasticsearch-adapter.service"}
needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values]}} of a unit file (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_render_replaces_every_placeholder_and_names_missing_ones() -> None:
    text = "ExecStart=@PYTHON@ x.py --state @STATE_DIR@/a @PYTHON@"
    assert render_units.render(text, {"PYTHON": "/p", "STATE_DIR": "/s"}) == (
        "ExecStart=/p x.py --state /s/a /p"
    )
    with pytest.raises(ValueError, match="STATE_DIR"):
        render_units.render(text, {"PYTHON": "/p"})


def test_values_with_spaces_or_relative_paths_are_refused() -> None:
    good = {"INSTALL_DIR": "/opt/tft", "USER": "tft"}
    render_units.check_values(good)
    for bad in ({"INSTALL_DIR": "/opt/my tft"}, {"STATE_DIR": "var/lib"}, {"USER": "a%b"}):
        with pytest.raises(ValueError):
            render_units.check_values(bad)


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """Every unit rendered with this checkout, its venv python and a tmp state dir."""
    out = tmp_path / "units"
    argv = ["--out", str(out), "--install-dir", str(ROOT), "--python", sys.executable]
    argv += ["--state-dir", str(tmp_path / "state"), "--config-dir", str(tmp_path / "etc")]
    assert render_units.main(argv) == 0
    return out


def test_the_five_units_are_rendered_without_placeholders(rendered: Path) -> None:
    assert set(UNITS) == EXPECTED
    for name in UNITS:
        text = (rendered / name).read_text()
        assert render_units.PLACEHOLDER.search(text) is None, name
        assert str(ROOT) in text and sys.executable in text, name


@needs_analyze
def test_systemd_analyze_verify_accepts_all_units(rendered: Path) -> None:
    units = [str(rendered / name) for name in UNITS]
    done = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=120
    )
    ours = [line for line in done.stderr.splitlines() if "tft-" in line or str(rendered) in line]
    assert done.returncode == 0 and not ours, done.stderr


@needs_analyze
def test_verify_fails_on_a_broken_unit(rendered: Path) -> None:
    """The check above can fail: a missing executable is an error for verify."""
    unit = rendered / DAEMON
    unit.write_text(unit.read_text().replace(sys.executable, "/nonexistent/python"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "/nonexistent/python" in done.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unit_has_ordering_and_hardening(rendered: Path, name: str) -> None:
    unit = parse_unit((rendered / name).read_text())
    service, head = unit["Service"], unit["Unit"]
    assert service["User"] == ["tft"] and service["Group"] == ["tft"]
    assert service["Restart"] == ["on-failure"]
    assert service["EnvironmentFile"][0].endswith("/etc/.env")
    assert service["WorkingDirectory"] == [str(ROOT)]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], (name, key)
    assert "network-online.target" in head["After"][0].split()
    assert "network-online.target" in head["Wants"][0].split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    if name != DAEMON:
        assert DAEMON in head["After"][0].split() and head["Requires"] == [DAEMON]
    writable = " ".join(service.get("ReadWritePaths", [])).split()
    assert (str(rendered.parent / "state") in writable) == (name in WRITES_STATE), writable


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_execstart_runs_a_repo_script_with_known_flags(rendered: Path, name: str) -> None:
    """Fails for the adapter units until adapters/*_adapter.py exist with those flags."""
    command = shlex.split(parse_unit((rendered / name).read_text())["Service"]["ExecStart"][0])
    assert command[0] == sys.executable
    script = command[1]
    assert (ROOT / script).is_file(), f"{name} runs {script}, which does not exist (yet)"
    assert unknown_flags(script, command[2:]) == [], f"{name}: flags unknown to {script}"


@pytest.mark.parametrize(
    "name", ["tft-mongodb-adapter.service", "tft-elasticsearch-adapter.service"]
)
def test_adapter_units_read_the_backfill_from_their_env_file(
    rendered: Path, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """26 h on a first start, as compose and start_all_production.sh, or the env file's
    TFT_ADAPTER_BACKFILL_HOURS: a --backfill-hours in ExecStart would override it."""
    from adapters import runner
    from adapters.config import AdapterSettings
    from adapters.mongodb_adapter import SPEC

    monkeypatch.delenv("TFT_ADAPTER_BACKFILL_HOURS", raising=False)
    service = parse_unit((rendered / name).read_text())["Service"]
    args = runner.parse_args(SPEC, shlex.split(service["ExecStart"][0])[2:])
    assert service["EnvironmentFile"] == [str(tmp_path / "etc" / ".env")]
    env_file = tmp_path / "etc" / ".env"  # what systemd loads into the environment
    env_file.parent.mkdir()
    env_file.write_text("TFT_API_KEY=k\n")
    assert runner.backfill_hours(args, AdapterSettings(_env_file=env_file)) == 26
    env_file.write_text("TFT_ADAPTER_BACKFILL_HOURS=12\n")
    assert runner.backfill_hours(args, AdapterSettings(_env_file=env_file)) == 12


HIDDEN = re.compile(r"/(home|root|run/user)/")  # what ProtectHome=yes hides


def visible_python() -> str:
    """An interpreter the services could run: this one, unless it or the Python it links
    to is under /home or /root (pyenv, uv), else the system's (install.sh's scripts need
    only the standard library)."""
    ours = (os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix))
    if not any(HIDDEN.match(p + "/") for p in ours):
        return sys.executable
    if Path("/usr/bin/python3").is_file():
        return "/usr/bin/python3"
    pytest.skip("no Python outside /home and /root for install.sh")


def install_env(tmp_path: Path, python: str | None = None) -> dict[str, str]:
    folders = {"STATE_DIR": "state", "CONFIG_DIR": "etc", "UNIT_DIR": "units"}
    env = {**os.environ, **{k: str(tmp_path / v) for k, v in folders.items()}}
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    python = python or visible_python()
    return {**env, "SERVICE_USER": user, "SYSTEMCTL": "true", "PYTHON": python}


def run_install(
    tmp_path: Path, *args: str, python: str | None = None
) -> subprocess.CompletedProcess:
    script = ROOT / "deploy" / "systemd" / "install.sh"
    return subprocess.run(
        ["bash", str(script), *args],
        env=install_env(tmp_path, python),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_dry_run_changes_nothing(tmp_path: Path) -> None:
    done = run_install(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "render_units.py --out" in done.stdout and "daemon-reload" in done.stdout
    assert "Dry run" in done.stdout and list(tmp_path.iterdir()) == []


def test_install_refuses_a_venv_whose_python_lives_under_root(tmp_path: Path) -> None:
    """A venv made with pyenv's or uv's Python: the venv is outside /root, but the
    interpreter and its standard library are not, and ProtectHome=yes hides them."""
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("#!/bin/sh\necho /root/.pyenv/versions/3.11.7\n")  # sys.base_prefix
    venv_python.chmod(0o755)
    done = run_install(tmp_path / "out", "--dry-run", python=str(venv_python))
    assert done.returncode == 1 and "ProtectHome=yes" in done.stderr
    assert "standard library in /root/.pyenv/versions/3.11.7" in done.stderr
    assert "PYTHON=/usr/bin/python3" in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh needs root")
@pytest.mark.skipif(
    re.match(r"/(home|root)/", str(ROOT)) is not None,
    reason="install.sh refuses a checkout under /home or /root (ProtectHome=yes)",
)
def test_install_renders_units_and_keeps_the_key_when_run_again(tmp_path: Path) -> None:
    first = run_install(tmp_path)
    assert first.returncode == 0, first.stderr
    env_file = tmp_path / "etc" / ".env"
    key = env_file.read_text()
    assert re.search(r"^TFT_API_KEY=[0-9a-f]{64}$", key, re.MULTILINE)
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == UNITS
    assert (tmp_path / "state" / "daemon").is_dir()
    second = run_install(tmp_path)
    assert second.returncode == 0, second.stderr
    assert env_file.read_text() == key and "already set" in second.stdout
