"""hybridtrace: trace process execs and file opens on any Linux kernel."""

__version__ = "0.1.0"

from hybridtrace.api import trace
from hybridtrace.capabilities import probe
from hybridtrace.events import ExecEvent, LostEvent, OpenEvent, Source

__all__ = ["ExecEvent", "LostEvent", "OpenEvent", "Source", "__version__", "probe", "trace"]
