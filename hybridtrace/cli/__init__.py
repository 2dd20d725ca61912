"""The `hybridtrace` command line."""
