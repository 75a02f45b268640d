"""Running training jobs: runners (inline, local processes; `registry` builds them from a URI),
the worker loop, leases and heartbeats, and `execute_job`, the one function every runner ends
up calling."""
