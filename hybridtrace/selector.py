"""Choose a backend (and its tier: ftrace tier, ebpf-core attach mode) for one kind of tracing."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import attrs

from hybridtrace.backends.base import Assessment, BackendError
from hybridtrace.backends.ebpf.requirements import assess_bcc, assess_core
from hybridtrace.backends.ftrace.requirements import assess_all
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.errors import RequestError
from hybridtrace.vocabulary import CORE_ATTACH_MODES, FTRACE_TIERS

CHOICES: Tuple[str, ...] = ("auto", "ebpf", "ebpf-core", "ebpf-bcc", "ftrace")
KINDS: Tuple[str, ...] = ("exec", "open")

# Which candidate labels each user choice may pick from, in order of preference.
_ALLOWED: Dict[str, Tuple[str, ...]] = {
    "auto": ("ebpf-core", "ebpf-bcc", "ftrace"),
    "ebpf": ("ebpf-core", "ebpf-bcc"),
    "ebpf-core": ("ebpf-core",),
    "ebpf-bcc": ("ebpf-bcc",),
    "ftrace": ("ftrace",),
}


class SelectionError(BackendError):
    pass


@attrs.frozen(slots=True)
class Decision:
    kind: str
    choice: str
    tier_request: Optional[str]
    candidates: List[Assessment]
    chosen: Optional[Assessment]
    attach_request: Optional[str] = None  # ebpf-core: one of CORE_ATTACH_MODES; None = best
    # Label -> why that usable candidate failed to open (the API's fallbacks).
    open_failures: Dict[str, str] = attrs.field(factory=dict)

    def allows(self, cand: Assessment) -> bool:
        if cand.backend not in _ALLOWED[self.choice]:
            return False
        wanted = {"ftrace": self.tier_request, "ebpf-core": self.attach_request}.get(cand.backend)
        return wanted is None or cand.tier == wanted

    @property
    def usable_candidates(self) -> List[Assessment]:
        """Usable candidates the user's choice allows, best first."""
        return [c for c in self.candidates if c.usable and self.allows(c)]

    @property
    def why(self) -> str:
        """One sentence: what was chosen and why the better ones were not."""
        if self.chosen is None:
            return self.failure()
        skipped = []
        for cand in self.candidates:
            if cand is self.chosen:
                break
            if self.allows(cand):
                skipped.append(f"{cand.label}: {self._why_not(cand)}")
        head = f"{self.chosen.label} chosen for {self.kind}"
        if self.choice != "auto":
            head += f" (--backend {self.choice})"
        return head + ("; not " + "; not ".join(skipped) if skipped else "")

    def _why_not(self, cand: Assessment) -> str:
        failed = self.open_failures.get(cand.label)
        if failed is not None:
            return f"failed to open: {failed}"
        blocking = next((r for r in cand.reasons if r.blocking), None)
        return blocking.message if blocking is not None else "not tried"

    def failure(self) -> str:
        """One line naming what is missing for each allowed candidate, then the fixes."""
        labels: Dict[str, List[str]] = {}  # each distinct reason once, with its candidates
        fixes: List[str] = []
        for cand in filter(self.allows, self.candidates):
            first = next(r for r in cand.reasons if r.blocking)
            labels.setdefault(first.message, []).append(cand.label)
            if first.remedy and first.remedy not in fixes:
                fixes.append(first.remedy)
        parts = [f"{', '.join(names)}: {message}" for message, names in labels.items()]
        what = self.choice
        if self.tier_request or self.attach_request:
            what += f"/{self.tier_request or self.attach_request}"
        line = f"no usable backend for {self.kind} tracing with --backend {what}: " + "; ".join(
            parts
        )
        return line + (" (fix: " + "; or ".join(fixes) + ")" if fixes else "")


def candidates(caps: Capabilities, kind: str) -> List[Assessment]:
    """Every backend and tier, best first."""
    # raw_tp (no BTF) reads less than BCC with the kernel's headers: it comes after it.
    return [assess_core(caps, kind, "tracepoint"), assess_core(caps, kind, "tp_btf"),
            assess_bcc(caps, kind), assess_core(caps, kind, "raw_tp"),
            *assess_all(caps, kind)]


def _one_of(what: str, value: str, known: Sequence[str]) -> None:
    """RequestError naming the choices when ``value`` is none of them."""
    if value not in known:
        raise RequestError(f"unknown {what} {value!r}: expected one of {', '.join(known)}")


def check_choice(kind: str, choice: str, tier: Optional[str],
                 attach: Optional[str] = None) -> str:
    """The backend choice ``tier`` or ``attach`` implies, or RequestError; judges no
    kernel (nothing probed)."""
    _one_of("kind", kind, KINDS)
    _one_of("backend", choice, CHOICES)
    if tier is not None:
        _one_of("ftrace tier", tier, FTRACE_TIERS)
        if choice not in ("auto", "ftrace"):
            raise RequestError("--tier applies to the ftrace backend only")
        choice = "ftrace"
    if attach is not None:
        _one_of("eBPF attach mode", attach, CORE_ATTACH_MODES)
        if choice not in ("auto", "ebpf", "ebpf-core"):
            raise RequestError("--ebpf-attach applies to the ebpf-core backend only")
        choice = "ebpf-core"
    return choice


def decide(
    caps: Capabilities, kind: str, choice: str = "auto", tier: Optional[str] = None,
    attach: Optional[str] = None,
) -> Decision:
    choice = check_choice(kind, choice, tier, attach)
    cands = candidates(caps, kind)
    if tier is not None:
        cands = [c for c in cands if c.backend != "ftrace" or c.tier == tier]
    undecided = Decision(kind, choice, tier, cands, None, attach)
    usable = undecided.usable_candidates
    return attrs.evolve(undecided, chosen=usable[0] if usable else None)


def require(caps: Capabilities, kind: str, choice: str = "auto",
            tier: Optional[str] = None, attach: Optional[str] = None) -> Decision:
    """Like decide, but a choice that cannot work raises SelectionError (one line)."""
    decision = decide(caps, kind, choice, tier, attach)
    if decision.chosen is None:
        raise SelectionError(decision.failure())
    return decision
