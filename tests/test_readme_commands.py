"""The READMEs' commands, checked statically: every script they run exists and knows every
flag they give it, every repository file they name exists, and the configuration table is
current. (The commands that run here are also run by tests/test_stack.py and `make demo`;
docker, systemctl and NSSM cannot run here.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from deploy import settings_table

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "deploy/README.md")
REPO_DIRS = ("adapters/", "deploy/", "training/", "bench/", "models/", "docs/", "tests/")
# Files the repository ships (outputs such as training/server_metrics.parquet are made).
SHIPPED = (".py", ".sh", ".json", ".yml", ".yaml", ".service", ".bat", ".ps1", ".md", ".png")


def shell_lines(readme: str) -> list[str]:
    """The commands of the README's bash blocks, continuation lines joined, comments cut."""
    text = (ROOT / readme).read_text()
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            command = line.split(" #")[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def commands() -> list[tuple[str, str]]:
    return [(readme, line) for readme in READMES for line in shell_lines(readme)]


def tokens(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote inside a documented curl body
        return line.split()


@cache
def help_text(script: str) -> str:
    if script.startswith("-m "):
        command = [sys.executable, "-m", script[3:], "--help"]
    else:
        command = [sys.executable, script, "--help"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def scripts_and_flags(words: list[str]) -> list[tuple[str, list[str]]]:
    """(script, its flags) for each python invocation on the line."""
    found = []
    for i, word in enumerate(words):
        if not word.endswith("python") and not word.endswith("python3"):
            continue
        rest = words[i + 1 :]
        if rest[:1] == ["-m"] and len(rest) > 1:
            script, args = f"-m {rest[1]}", rest[2:]
        elif rest and rest[0].endswith(".py"):
            script, args = rest[0], rest[1:]
        else:
            continue
        flags = [a.split("=")[0] for a in args if a.startswith("--")]
        found.append((script, flags))
    return found


@pytest.mark.parametrize(("readme", "line"), commands())
def test_named_repository_files_exist(readme: str, line: str) -> None:
    for word in tokens(line):
        path = word.split("=")[-1].strip("\"'")
        if path.startswith(REPO_DIRS) and path.endswith(SHIPPED) and "*" not in path:
            assert (ROOT / path).exists(), f"{readme}: {line}: {path}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scripts_know_the_flags_the_readmes_give_them() -> None:
    problems = []
    for readme, line in commands():
        for script, flags in scripts_and_flags(tokens(line)):
            if not script.startswith("-m ") and not (ROOT / script).exists():
                problems.append(f"{readme}: {line}: no {script}")
                continue
            usage = help_text(script)
            problems += [f"{readme}: {script} has no {f}" for f in flags if f not in usage]
    assert not problems, "\n".join(problems)


def test_settings_table_is_current() -> None:
    assert settings_table.main(["--check"]) == 0


def test_the_flag_check_sees_an_unknown_flag() -> None:
    found = scripts_and_flags(tokens(".venv/bin/python dash_app.py --nope=1 --port 1"))
    assert found == [("dash_app.py", ["--nope", "--port"])]
    assert "--port" in help_text("dash_app.py") and "--nope" not in help_text("dash_app.py")
