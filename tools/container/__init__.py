"""Real containers for the tests: a Debian root filesystem and podman (see README)."""
