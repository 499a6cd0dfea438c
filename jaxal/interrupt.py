"""Graceful stops: SIGTERM (cluster preemption) and SIGINT (Ctrl-C).

While a run is inside :func:`graceful`, the first SIGTERM or SIGINT only sets a
flag; the run stops at its next safe point (:func:`check`: between training
steps of the host step loop, and between rounds), after the last finished
round's checkpoint and result files are complete. A second signal stops at once
(``KeyboardInterrupt``). Outside :func:`graceful` nothing changes.

Signals are process-wide, so this state is too; it is set and cleared only by
:func:`graceful`, which the driver enters once per run.
"""

from __future__ import annotations

import contextlib
import signal
import threading

# Exit statuses: 128 + signal number, the shell's convention (130 = Ctrl-C).
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}

_requested: list[int] = []  # the signal that asked for a stop, if any
_lock = threading.Lock()


class Interrupted(Exception):
    """The run was asked to stop (SIGTERM or SIGINT) and stopped at a safe point."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 128 + self.signum)


def requested() -> int | None:
    """The signal number of a pending stop request, or ``None``."""
    return _requested[0] if _requested else None


def check() -> None:
    """Raise :class:`Interrupted` if a stop was requested (call at safe points)."""
    if _requested:
        raise Interrupted(_requested[0])


def request(signum: int = signal.SIGTERM) -> None:
    """Ask the run to stop at its next safe point (what the signal handler does)."""
    with _lock:
        if _requested:
            raise KeyboardInterrupt  # a second request: stop now
        _requested.append(int(signum))


@contextlib.contextmanager
def graceful(signals=(signal.SIGTERM, signal.SIGINT)):
    """Turn ``signals`` into stop requests for the duration of the block.

    Only the main thread can install handlers; elsewhere (e.g. a run started
    from a worker thread) the block runs with the default handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}
    _requested.clear()

    def handler(signum, frame):
        del frame
        request(signum)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested.clear()
