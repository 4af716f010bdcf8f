"""TFT inference daemon (FastAPI on port 8000): /feed, /predict, /health.

Not built yet: it is the subject of the inference-daemon issue. Until then this entry
point refuses to run rather than pretend to serve forecasts.
"""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write("tft_inference_daemon.py is not implemented yet (inference-daemon issue)\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
