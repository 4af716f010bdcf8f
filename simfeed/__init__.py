"""The live simulated fleet behind metrics_generator_daemon.py.

It streams metrics_generator.FleetSimulator's fleet into the inference daemon's /feed
exactly as an adapter would: a backfill of history first, then one tick per server per
interval, optionally with accelerated time and scenarios switched at runtime.

Modules: settings (the one Settings object), timing (tick and clock arithmetic), records
(frames to contract records, 5-minute aggregation), scenarios (ScenarioController),
sender (FeedSender: bounded retry buffer), answers (the daemon's per-record verdicts
on a batch), control (the control API), runner (wiring).
"""
