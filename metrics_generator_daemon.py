"""Metrics generator daemon: a live simulated fleet fed into the TFT daemon's /feed.

    python metrics_generator_daemon.py --daemon-url http://localhost:8000 --servers 20

The entry script (the spec, deploy files and Makefile run it by this name); the daemon is
simfeed.daemon, see its docstring or --help.
"""

import sys

from simfeed.daemon import main

if __name__ == "__main__":
    sys.exit(main())
