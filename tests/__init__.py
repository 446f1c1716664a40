"""asyncws's test suite (a package so that `tests.servers` and `tests.apps` import)."""
