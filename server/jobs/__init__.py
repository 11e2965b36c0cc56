"""Jobs: the work scoring workers claim from the database (submissions to score, reference statistics to build),
the one lease mechanism that holds them (leases.py), the worker loops and their signal handling.

The web tier imports only the row-level modules (queue.py, reference_builds.py, leases.py), the server's side of
remote workers (remote.py) and the model seeds (sampling_seeds.py); the engine-side modules (worker.py,
reference_worker.py, entries.py, model_entries.py, remote_worker.py: the remote worker's client) are for workers and
the CLI (contracts in pyproject.toml)."""
