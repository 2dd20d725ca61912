"""hybridtrace: trace process execs and file opens on any Linux kernel."""

from hybridtrace.events import ExecEvent, LostEvent, OpenEvent, Source

__version__ = "0.1.0"

__all__ = ["ExecEvent", "LostEvent", "OpenEvent", "Source", "__version__"]
