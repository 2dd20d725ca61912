"""Losses in the ftrace proofs: one bound stands for all of them, so an overloaded
session's every event costs the same however many losses came before (each poll of
an overloaded session counts one), and the answers stay what each gap implies."""

from __future__ import annotations

from hybridtrace.backends.ftrace.fd_ledger import INF, SLACK_NS, FdLedger
from hybridtrace.backends.ftrace.origin_proof import ChangeLedger


def test_fd_ledger_losses_answer_as_their_latest_bound() -> None:
    ledger = FdLedger()
    assert not ledger.lost(0, 10)
    ledger.gap(-INF, 5_000)
    ledger.gap(-INF, 2_000)  # an earlier bound counted later: the later bound still holds
    assert ledger.lost(4_000, 4_500)
    assert ledger.lost(5_000 + SLACK_NS, 9_000)  # within the slack of the bound
    assert not ledger.lost(5_000 + SLACK_NS + 1, 9_000)
    assert not ledger.proven(None, 1, 3, 4_000, 4_500)
    assert ledger.proven(None, 1, 3, 7_000, 8_000)


def test_fd_ledger_stop_gap_is_kept_beside_losses() -> None:
    ledger = FdLedger()
    ledger.gap(-INF, 1_000)
    ledger.gap(50_000, INF)  # recording stopped
    assert ledger.lost(60_000, 70_000)
    assert not ledger.lost(10_000, 20_000)


def test_change_ledger_losses_answer_as_their_latest_bound() -> None:
    ledger = ChangeLedger()
    assert not ledger.changed(7, 0, 10)
    for end in range(1_000, 11_000, 1_000):
        ledger.gap(-INF, end)
    assert ledger.changed(7, 9_000, 9_500)
    assert ledger.changed(7, 10_000, 20_000)
    assert not ledger.changed(7, 10_001, 20_000)
    ledger.gap(30_000, INF)
    assert ledger.changed(7, 25_000, 31_000)
    assert not ledger.changed(7, 20_000, 29_000)


def test_many_losses_keep_no_list() -> None:
    fds, changes = FdLedger(), ChangeLedger()
    for end in range(100_000):
        fds.gap(-INF, end)
        changes.gap(-INF, end)
    assert fds._gaps == [] and changes._gaps == []
