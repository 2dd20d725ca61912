"""The contract between the selector/API and every backend.

A backend is split in two modules so that `doctor` stays fast and never
imports ctypes or BCC: ``requirements`` judges a Capabilities value (pure),
``stream`` opens the kernel resources and yields events.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Sequence

import attrs

from hybridtrace.errors import BackendError as BackendError  # here for the backends
from hybridtrace.events import Event


@attrs.frozen(slots=True)
class Reason:
    """One finding about a candidate; ``code`` is stable for machines."""

    code: str
    message: str
    blocking: bool = True
    remedy: Optional[str] = None


@attrs.frozen(slots=True)
class Assessment:
    """A candidate backend (and ftrace tier) judged against one kernel."""

    backend: str  # "ebpf-core", "ebpf-bcc", "ftrace"
    tier: Optional[str]  # ftrace tier name, None for eBPF
    kind: str
    reasons: List[Reason]
    fields: Dict[str, str]  # field -> "complete" | "partial: why" | "none: why"

    @property
    def usable(self) -> bool:
        return not any(r.blocking for r in self.reasons)

    @property
    def label(self) -> str:
        return self.backend if self.tier is None else f"{self.backend}/{self.tier}"


@attrs.frozen(slots=True)
class Unread:
    """What the kernel still held when a session ended: ``count`` events, or at
    most ``count`` when not ``exact`` (a buffer that counts records, not events)."""

    count: int = 0
    exact: bool = True


@attrs.define
class StreamStats:
    captured: int = 0
    lost: int = 0


class EventStream(Protocol):
    """An open tracing session inside one backend.

    ``poll`` returns what is ready (possibly nothing) within ``timeout``
    seconds (None blocks until something arrives); a LostEvent is returned as
    soon as a loss is known. ``close`` is idempotent and removes every kernel
    resource the stream created.

    Ending without losing anything silently (Session.drain): ``stop`` keeps
    the kernel from recording new events while what it holds stays readable;
    after draining, ``unread`` says what the kernel still holds for us, which
    is reported as lost.
    """

    description: str

    def poll(self, timeout: Optional[float]) -> Sequence[Event]: ...

    @property
    def stats(self) -> StreamStats: ...

    def stop(self) -> None: ...

    def unread(self) -> Unread: ...

    def close(self) -> None: ...
