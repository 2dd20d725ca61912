"""gc_pause.paused: the cycle collector off inside, and as the program left it after."""

from __future__ import annotations

import gc

import pytest

from hybridtrace.gc_pause import paused


def test_off_inside_back_on_after_even_when_the_block_raises() -> None:
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_program_that_turned_collection_off_keeps_it_off() -> None:
    gc.disable()
    try:
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
