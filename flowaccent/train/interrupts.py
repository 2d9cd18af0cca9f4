r"""Ctrl-C and SIGTERM held back while a training step and its count change together.

A signal's Python handler runs between any two bytecodes of the main thread, so a Ctrl-C could land
after ``optimizer.step()`` had changed the weights and Adam's moments but before the trainer counted
the step. The checkpoint written on the way out then said one step fewer than the weights had taken,
and a resume took that step again (the interruption audit saw it in 1 of 12 real interrupts). Inside
:meth:`HeldSignals.critical` the handlers only note the first signal; it is delivered, through the handler
it would have met, as the section ends. A second one acts at once (a step can take minutes: the first one
compiles, with ``train.compile``). Outside the sections (waiting for a batch, validating, saving) a signal
acts at once, as before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from flowaccent.signals import STOPS, forget, pass_on, repeated

#: The signals held back: those that stop a command.
SIGNALS = STOPS


class HeldSignals:
    r"""Context manager: while it is open, :meth:`critical` sections hold SIGINT and SIGTERM back.

    Only Python-level handlers are wrapped (``KeyboardInterrupt``'s default and the CLI's SIGTERM
    handler); a signal left at the system's default (SIGTERM of a library caller) still ends the
    process at once, as it would without this. Off the main thread (where handlers cannot be set)
    it does nothing.
    """

    def __init__(self, deliver_on=None) -> None:
        #: ``deliver_on(error)``: whether a section's ``error`` gives way to a signal held back in it (a collective
        #: whose peer was stopped by the same Ctrl-C: the run was interrupted, not broken)
        self.deliver_on = deliver_on
        self._handlers: dict[int, object] = {}
        self._depth = 0
        self._pending: tuple[int, object] | None = None

    def __enter__(self) -> HeldSignals:
        forget()  # a stop before these sections is not one their first signal repeats
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                handler = signal.getsignal(number)
                if callable(handler):
                    self._handlers[number] = handler
                    signal.signal(number, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._handlers.items():
            signal.signal(number, handler)
        self._handlers.clear()

    def _note(self, number: int, frame) -> None:
        if repeated(number):  # the same SIGTERM twice: it does not act at once as a second one
            return
        if self._depth and self._pending is None:  # the first is held; a second (Ctrl-C again, during a step that
            self._pending = (number, frame)  # takes minutes: the first compiles) acts at once, as before
            return
        self._pending = None
        pass_on(self._handlers[number], number, frame)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        r"""A section the first SIGINT/SIGTERM does not interrupt: it is delivered as the section ends (unless the
        section raises: its exception goes on instead); a second one acts at once."""
        self._depth += 1
        try:
            yield
        except BaseException as error:  # the section's own error (a non-finite loss) ends the run, not the signal
            self._depth -= 1
            pending, deliver = self._pending, self.deliver_on is not None and self.deliver_on(error)
            if not self._depth:
                self._pending = None
            if pending is not None and deliver and not self._depth:
                pass_on(self._handlers[pending[0]], *pending)  # raises (KeyboardInterrupt), the error as its context
            raise
        self._depth -= 1
        if not self._depth and self._pending is not None:
            number, frame = self._pending
            self._pending = None
            pass_on(self._handlers[number], number, frame)
