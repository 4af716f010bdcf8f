"""Render the systemd unit templates beside this file (tft-*.service, with @PLACEHOLDERS@).

    python deploy/systemd/render_units.py --out /etc/systemd/system \\
        [--install-dir DIR] [--python PATH] [--state-dir /var/lib/tft] \\
        [--config-dir /etc/tft] [--user tft] [--group tft]

Placeholders: @INSTALL_DIR@ (the checkout), @PYTHON@ (its venv's python), @STATE_DIR@
(writable state), @CONFIG_DIR@ (the .env and the adapter configs), @USER@, @GROUP@.
install.sh calls this; it is also usable alone (e.g. to review the units first).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent
INSTALL_DIR = TEMPLATES_DIR.parent.parent
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
# systemd splits ExecStart= on whitespace and expands % specifiers: keep both out of paths.
UNSAFE = re.compile(r"[\s%\"'\\]")


def render(template_text: str, values: dict[str, str]) -> str:
    """The template with every @NAME@ replaced; ValueError naming any placeholder without
    a value."""
    missing = sorted(set(PLACEHOLDER.findall(template_text)) - values.keys())
    if missing:
        raise ValueError(f"no value for placeholder(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template_text)


def templates() -> list[Path]:
    """The unit templates, sorted by name."""
    return sorted(TEMPLATES_DIR.glob("tft-*.service"))


def check_values(values: dict[str, str]) -> None:
    """Paths must be absolute, and no value may hold whitespace, quotes or %."""
    for name, value in values.items():
        if not value or UNSAFE.search(value):
            raise ValueError(f"{name}={value!r}: empty, or has whitespace, quotes or %")
        if name not in ("USER", "GROUP") and not value.startswith("/"):
            raise ValueError(f"{name}={value!r}: must be an absolute path")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the units")
    parser.add_argument("--install-dir", type=Path, default=INSTALL_DIR)
    parser.add_argument("--python", type=Path, help="default: INSTALL_DIR/.venv/bin/python")
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/tft"))
    parser.add_argument("--config-dir", type=Path, default=Path("/etc/tft"))
    parser.add_argument("--user", default="tft")
    parser.add_argument("--group", help="default: the same as --user")
    return parser.parse_args(argv)


def values_from(args: argparse.Namespace) -> dict[str, str]:
    """The placeholder values given on the command line, checked."""
    install_dir = args.install_dir.absolute()
    values = {
        "INSTALL_DIR": str(install_dir),
        "PYTHON": str((args.python or install_dir / ".venv/bin/python").absolute()),
        "STATE_DIR": str(args.state_dir.absolute()),
        "CONFIG_DIR": str(args.config_dir.absolute()),
        "USER": args.user,
        "GROUP": args.group or args.user,
    }
    check_values(values)
    return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        values = values_from(args)
    except ValueError as exc:
        sys.stderr.write(f"render_units.py: {exc}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for template in templates():
        unit = args.out / template.name
        unit.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        sys.stdout.write(f"wrote {unit}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
