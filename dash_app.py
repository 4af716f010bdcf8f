"""Dash dashboard (port 8501) that polls the daemon's /predict every 30 s.

Not built yet: it is the subject of the dashboard issue. Until then this entry point
refuses to run rather than show an empty page.
"""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write("dash_app.py is not implemented yet (dashboard issue)\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
