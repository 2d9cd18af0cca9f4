r"""HeldSignals: a Ctrl-C inside a critical section waits for its end; a second acts at once; the section's own
error goes on instead of the signal; the handlers are given back."""

from __future__ import annotations

import signal

import pytest

from flowaccent.train.interrupts import HeldSignals

pytestmark = pytest.mark.usefixtures("python_sigint")  # Python's Ctrl-C handler, even in a background job


def test_a_signal_in_a_section_is_delivered_as_it_ends():
    done = []
    with HeldSignals() as held, pytest.raises(KeyboardInterrupt):
        with held.critical():
            signal.raise_signal(signal.SIGINT)
            done.append("the rest of the section")
        done.append("after it")  # not reached
    assert done == ["the rest of the section"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_acts_at_once():
    r"""During a step that takes minutes (the first one compiles) a second Ctrl-C did nothing until its end."""
    done = []
    with HeldSignals() as held, pytest.raises(KeyboardInterrupt):
        with held.critical():
            signal.raise_signal(signal.SIGINT)
            done.append("held")
            signal.raise_signal(signal.SIGINT)
            done.append("not reached")
    assert done == ["held"]


def test_the_sections_own_error_goes_on_and_nothing_stays_held():
    r"""A held signal replaced the section's own error (a non-finite loss said as a Ctrl-C, exit 130)."""
    with HeldSignals() as held:
        with pytest.raises(ValueError, match="the step's own"):
            with held.critical():
                signal.raise_signal(signal.SIGINT)
                raise ValueError("the step's own")
        with held.critical():
            pass  # the dropped signal is not delivered later
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_a_section_a_signal_acts_at_once():
    with HeldSignals(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_an_error_the_held_signal_caused_gives_way_to_it():
    r"""Under torchrun a Ctrl-C reaches every process: one that saved and left broke the collective another was
    in, whose held Ctrl-C then ended it with gloo's 50-line 'Connection reset by peer' traceback. An error that
    ``deliver_on`` accepts gives way to the held signal; any other still goes on."""
    from flowaccent.train.distributed import peer_gone

    gone = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:42388: "
                        "Connection reset by peer. This is typically caused by a remote worker hanging. GLHF!")
    with HeldSignals(deliver_on=peer_gone) as held:
        with pytest.raises(KeyboardInterrupt) as raised:
            with held.critical():
                signal.raise_signal(signal.SIGINT)
                raise gone
        assert raised.value.__context__ is gone
        with pytest.raises(RuntimeError, match="Connection reset"):  # no signal held: the error itself
            with held.critical():
                raise gone
        with pytest.raises(ValueError, match="own"):
            with held.critical():
                signal.raise_signal(signal.SIGINT)
                raise ValueError("own")
    assert peer_gone(gone) == "Read error [127.0.0.1]:42388: Connection reset by peer"
    assert peer_gone(RuntimeError("CUDA out of memory")) is None and peer_gone(ValueError("Broken pipe")) is None


def test_the_same_sigterm_twice_is_held_as_one(monkeypatch):
    r"""A scheduler's SIGTERM reaches every process of a job and a recipe passes its own on too: the command got
    two a few milliseconds apart, and the second acted at once, inside the step the first was held for. One that
    comes within ``AGAIN_S`` of it is dropped; one later acts at once, as a second Ctrl-C does."""
    from flowaccent import signals

    def stop(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, stop)  # as the command line's handler
    signals.forget()
    try:
        with signals.owned([signal.SIGTERM]):
            done = []
            with HeldSignals() as held, pytest.raises(KeyboardInterrupt):
                with held.critical():
                    signal.raise_signal(signal.SIGTERM)
                    signal.raise_signal(signal.SIGTERM)  # the same stop again
                    done.append("the rest of the section")
            assert done == ["the rest of the section"]
            now = signals.time.monotonic()
            monkeypatch.setattr(signals.time, "monotonic", lambda: now + 10 * signals.AGAIN_S)
            with HeldSignals() as held, pytest.raises(KeyboardInterrupt):
                with held.critical():
                    signal.raise_signal(signal.SIGTERM)
                    monkeypatch.setattr(signals.time, "monotonic", lambda: now + 12 * signals.AGAIN_S)
                    signal.raise_signal(signal.SIGTERM)  # a second stop, seconds later
                    done.append("not reached")
            assert done == ["the rest of the section"]
    finally:
        signal.signal(signal.SIGTERM, before)
        signals.forget()


def test_a_library_callers_own_sigterm_handler_gets_every_signal():
    r"""Repeats are dropped only while the command line's own handlers are in place: a caller's handler that counts
    SIGTERMs (a second one to quit at once) got only the first of two within a second."""
    got = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with HeldSignals():  # between sections: each acts at once
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert len(got) == 2


def test_a_repeat_is_a_sigterm_or_sighup_of_the_command_line_alone_and_not_one_handed_on():
    from flowaccent import signals

    signals.forget()
    try:
        with signals.owned([signal.SIGTERM, signal.SIGHUP]):
            assert [signals.repeated(signal.SIGINT) for _ in range(2)] == [False, False]  # a second Ctrl-C: the user's
            assert [signals.repeated(signal.SIGTERM) for _ in range(2)] == [False, True]
            assert signals.repeated(signal.SIGHUP) is False  # each kind its own
            got = []
            signals.pass_on(lambda signum, frame: got.append(signals.repeated(signum)), signal.SIGTERM, None)
            assert got == [False]  # a signal held back and delivered late is not its own repeat

            def outer(signum, frame):  # as the workers' handler, handed on after the fork, hands on to the command's
                signals.pass_on(lambda *args: None, signum, frame)
                got.append(signals.repeated(signum))

            signals.pass_on(outer, signal.SIGTERM, None)
            assert got == [False, False]
        signals.forget()
        assert [signals.repeated(signal.SIGTERM) for _ in range(2)] == [False, False]  # not the command line's
    finally:
        signals.forget()


@pytest.fixture
def command_line_sigterm():
    r"""flowaccent's own SIGTERM handler in place, as ``flowaccent CMD`` has it: yields its record of the signals."""
    from flowaccent import signals
    from flowaccent.cli import _stops as cli

    before = signal.signal(signal.SIGTERM, cli.on_stop_signal)
    cli.TERMINATED.clear()
    signals.forget()
    try:
        with signals.owned([signal.SIGTERM]):
            yield cli.TERMINATED
    finally:
        signal.signal(signal.SIGTERM, before)
        cli.TERMINATED.clear()
        signals.forget()


def test_under_the_command_lines_handler_each_sigterm_stops_once_as_sigterm(command_line_sigterm):
    r"""A SIGTERM that HeldSignals hands on (at once between sections, at a section's end, or for the section's
    error it caused) reaches the command's handler as a new one, not as a repeat of itself (dropped: the run went
    on), and is recorded as a SIGTERM (exit 143); a stop before the sections are entered is not one it repeats."""
    from flowaccent import signals

    with HeldSignals(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert command_line_sigterm == [signal.SIGTERM]
    command_line_sigterm.clear()
    done = []
    with HeldSignals() as held, pytest.raises(KeyboardInterrupt):
        with held.critical():
            signal.raise_signal(signal.SIGTERM)
            done.append("the rest of the section")
    assert done == ["the rest of the section"] and command_line_sigterm == [signal.SIGTERM]
    command_line_sigterm.clear()
    with HeldSignals(deliver_on=lambda error: True) as held, pytest.raises(KeyboardInterrupt):
        with held.critical():
            signal.raise_signal(signal.SIGTERM)
            raise RuntimeError("a collective whose peer the same signal stopped")
    assert command_line_sigterm == [signal.SIGTERM]
    command_line_sigterm.clear()
    signals.repeated(signal.SIGTERM)  # a stop just before
    with HeldSignals(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert command_line_sigterm == [signal.SIGTERM]


def test_a_repeat_is_one_within_a_second_of_the_last_signal_acted_on(monkeypatch):
    r"""Arrivals at 0, 0.5, 1.2 and 1.6 s: the second and the fourth are repeats (of 0 and of 1.2); a dropped one
    does not move the window on (SIGTERMs every half second were all dropped after the first)."""
    from flowaccent import signals

    now = [100.0]
    monkeypatch.setattr(signals.time, "monotonic", lambda: now[0])
    signals.forget()
    try:
        with signals.owned([signal.SIGTERM]):
            got = []
            for t in (0.0, 0.5, 1.2, 1.6, 2.3):
                now[0] = 100.0 + t
                got.append(signals.repeated(signal.SIGTERM))
        assert got == [False, True, False, True, False]
        assert 0.5 <= signals.AGAIN_S <= 2  # Slurm's and the recipe's copies come milliseconds apart; a user's later
    finally:
        signals.forget()
