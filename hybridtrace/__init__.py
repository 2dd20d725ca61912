"""hybridtrace: trace process execs and file opens on any Linux kernel."""

__version__ = "0.1.0"

from hybridtrace.api import Session, SessionStats, StartError, trace
from hybridtrace.capabilities import probe
from hybridtrace.errors import BackendError, RequestError
from hybridtrace.events import ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.selector import SelectionError

__all__ = [
    "BackendError",
    "ExecEvent",
    "LostEvent",
    "OpenEvent",
    "RequestError",
    "SelectionError",
    "Session",
    "SessionStats",
    "Source",
    "StartError",
    "__version__",
    "probe",
    "trace",
]
