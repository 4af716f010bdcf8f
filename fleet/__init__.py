"""The simulated fleet: the servers behind the training corpus and the live development feed.

One model serves both, so a model trained on generated rows sees the same behaviour live.
Modules, each depending only on those above it:
- events: what can happen to a server (modes, incident kinds, phase lengths), Incident;
- noise: the noise channels (AR(1) time constants, white channels) and step-mean variance;
- profiles: kinds of server with their baselines, naming and share, and the fleet mixes;
- servers: per-server parameters drawn from the profiles (ServerTable);
- metrics: contract metrics and states from a chunk of simulated state (chunk_metrics);
- behaviours: the realistic mix's cloud-VM behaviours (jobs, bursts, cron, deploys);
- ticks: rows with the daemon's step statistics from a few sub-ticks per step;
- draws: the simulator's random numbers, per block of steps, whatever the chunking;
- frame: contract rows from simulated chunks;
- simulator: FleetSimulator, the seeded step-by-step state machine;
- generate: generate_fleet / write_fleet, the training corpus (metrics_generator.py's CLI).
"""

import numpy as np

Array = np.ndarray  # the type of every per-server / per-step array in the package
