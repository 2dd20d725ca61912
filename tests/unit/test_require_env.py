"""HYBRIDTRACE_REQUIRE_BACKENDS turns a skip into a failure for what it names: backends
(a tier is required by its backend's name too), root, and podman."""

from __future__ import annotations

import pytest

from tests.conftest import require, require_backend

ENV = "HYBRIDTRACE_REQUIRE_BACKENDS"


@pytest.mark.parametrize("listed, name, fails", [
    ("root,ebpf-core,podman", "podman", True),
    ("root,ebpf-core", "podman", False),
    ("", "podman", False),
    ("ftrace", "ftrace/kprobe", True),
    ("ftrace/uprobe", "ftrace/kprobe", False),
])
def test_require_fails_only_for_what_is_listed(monkeypatch: pytest.MonkeyPatch, listed: str,
                                               name: str, fails: bool) -> None:
    monkeypatch.setenv(ENV, listed)
    expected = pytest.fail.Exception if fails else pytest.skip.Exception
    with pytest.raises(expected, match="cannot run"):
        require(name, f"{name} cannot run here")


def test_require_backend_says_which_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "ebpf-bcc")
    with pytest.raises(pytest.fail.Exception, match=r"backend ebpf-bcc cannot run here: no"
                                                    r" headers.*REQUIRE_BACKENDS"):
        require_backend("ebpf-bcc", "no headers")
