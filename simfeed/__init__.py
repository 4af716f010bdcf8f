"""The live simulated fleet behind metrics_generator_daemon.py.

It streams fleet.simulator.FleetSimulator's fleet into the inference daemon's /feed
exactly as an adapter would: a backfill of history first, then one tick per server per
interval, optionally with accelerated time and scenarios switched at runtime.

Modules: settings (the one Settings object), timing (tick and clock arithmetic), records
(frames to contract records, 5-minute aggregation), scenarios (ScenarioController),
sender (FeedSender: bounded retry buffer, POSTing with feedclient), answers (logging the
daemon's per-record verdicts on a batch), sinks (MongoDB and Elasticsearch instead of
/feed), control (the control API), runner (wiring), daemon (the command line: flags,
logging, signals; metrics_generator_daemon.py runs its main()).
"""
