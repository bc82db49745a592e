"""Stopping promptly: SIGTERM and SIGINT end a local command within ``STOP_GRACE_SECONDS``,
whatever the load and whatever the other threads are doing.

systemd and Docker wait 10 s after SIGTERM, then SIGKILL. A local command holds executions of the
state machine in threads (moto's interpreter), an HTTP server, an emulator: none of them needs to
be waited for, because every object the jobs wrote is already whole on disk (a write is a
temporary file renamed into place) and the next ``resume`` or ``serve`` continues from there. So a
stop does the little it has to (a summary, a checkpoint) under a deadline, and then ends the process
with ``os._exit``: no waiting for the executions' threads, no interpreter teardown (a full garbage
collection of moto's objects, which takes seconds on a loaded machine).

Why ``serve`` once ignored SIGTERM: its stop path asked moto for the unfinished jobs
(``list_objects_v2`` and a read of every manifest) while executions were still writing and deleting
drafts; under load moto's listing can fail mid-iteration (a key deleted between its copy of the
key list and its read of the key, a reader handed a closed buffer), and the exception left the
``with LocalCloud`` block through ``__exit__``, which waits for every running execution to end
(up to 120 s each) before the process could exit. The stop path now reads the state directory on
disk, never moto, and runs under the deadline armed by :func:`arm_exit`.

What a SIGTERM at each point of serve's start-up did (``test_serve_stops_on_sigterm_at_every_point
_of_its_start`` sends it from a hook at each point, to the main thread or to another one): right
after the handlers were installed, before the ``try`` that turns the signal into the stop, it left
as "longform: interrupted", exit 130; and the unfinished jobs were listed and resumed after the API
was up, so a job submitted during the start-up was started a second time. Any other error of the
start-up went through ``LocalCloud.__exit__``, which waits for every running execution while the
API thread goes on serving. serve now installs the handlers first inside that ``try``, resumes
before the API starts, and ends at once on an error (``commands/serve.py``).

The one hang a fresh-clone ``make test`` saw (serve still running 60 s after SIGTERM, nothing on
stderr) fits a SIGTERM the kernel handed to another thread while serve's main thread slept in
``time.sleep(3600)``: Python runs a signal's handler only in the main thread, when it next runs
bytecode, so the stop waited for the sleep (reproduced by sending the signal to one thread,
``test_serve_stops_under_load_with_jobs_in_flight[thread]``). The main thread now sleeps 0.2 s at a
time, and, for any other C call it may block in, the deadline is armed from the wakeup fd by a thread
of its own (:func:`raise_on_signals`). A hang guard in the tests sends SIGUSR1 before SIGKILL and
prints the threads' kernel states: a thread stuck in uninterruptible I/O (an fsync on a saturated
disk holds ``os._exit`` back) would show there as state ``D``, which no code here can shorten.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

STOP_GRACE_SECONDS = 1.0


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def exit_now(code: int) -> NoReturn:
    """End the process at once with ``code`` (what was printed is flushed first)."""
    _flush()
    os._exit(code)


def arm_exit(code: int, grace: float = STOP_GRACE_SECONDS) -> threading.Thread:
    """From now on the process ends within ``grace`` seconds with ``code``, whatever the main
    thread is still doing (a summary, a checkpoint). Idempotent enough: a second call arms a
    second deadline, the first one to fire wins."""

    # from the signal on, the executions' threads are abandoned: one that fails while the process
    # ends (seen under load: moto's startExecution.sync:2 poller of a batch) is not the user's
    # error, and its traceback on stderr would bury the stop's one line
    threading.excepthook = _quiet_thread_error
    thread = threading.Thread(
        target=_end_after, args=(code, grace), name="longform-stop-deadline", daemon=True
    )
    thread.start()
    return thread


def _end_after(code: int, grace: float) -> NoReturn:
    """The stop deadline: ``grace`` seconds, the stop's one line, then the end (``exit_now``)."""
    time.sleep(grace)
    with contextlib.suppress(Exception):
        sys.stderr.write(f"longform: stopped ({grace:g} s after the signal; what is on disk is whole)\n")
    exit_now(code)


def _quiet_thread_error(args: threading.ExceptHookArgs) -> None:
    """An abandoned thread's error after a stop: nothing to report (what is on disk is whole)."""


def write_line(text: str, stream: TextIO | None = None) -> None:
    """Print a line on a stream that may be gone (a closed pipe): a stop never fails on it."""
    out = stream if stream is not None else sys.stdout
    with contextlib.suppress(Exception):
        out.write(text + "\n")
        out.flush()


def dump_stacks_on_request() -> Callable[[], None]:
    """From now on ``kill -USR1 PID`` prints where every thread of the process is, on stderr, and
    the process goes on. faulthandler writes it from the C signal handler itself, so it answers
    even when the main thread is blocked in a C call (a lock, a join, a long sleep) and Python's own
    handlers wait for it: a hang guard sends it before SIGKILL, so a hang shows where it was.
    Returns what takes it back."""
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, ValueError, RuntimeError, OSError):  # no SIGUSR1 (Windows), no stderr fd
        return lambda: None
    return lambda: faulthandler.unregister(signal.SIGUSR1)


def raise_on_signals(code: int) -> Callable[[], None]:
    """SIGTERM (systemd, Docker, kill) and SIGINT (Ctrl-C) raise KeyboardInterrupt in the main
    thread, with the process's end armed (``arm_exit(code)``) whatever happens next; SIGUSR1 prints
    every thread's stack (:func:`dump_stacks_on_request`). Call it from the main thread; it returns
    what puts the previous handlers back (in-process callers, tests).

    The end is armed by the signal itself, not by the Python handler: Python runs a handler only
    in the main thread, between two of its bytecodes, so while the main thread is blocked in a C
    call without a timeout (a lock, a join, a read) a signal the kernel handed to another thread
    waits for that call, possibly forever. Python's C-level handler writes the signal's number to
    the wakeup fd at once, in whichever thread took it; a thread of ours reads it and arms the end
    (:func:`_arm_on_wakeup`). The Python handler then only raises KeyboardInterrupt: it starts no
    thread (``Thread.start`` takes ``threading``'s module lock, which the interrupted main thread
    may be holding)."""
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    no_dumps = dump_stacks_on_request()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    unwatch = _arm_on_wakeup(code)

    def restore() -> None:
        unwatch()
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        no_dumps()

    return restore


def _arm_on_wakeup(code: int, grace: float = STOP_GRACE_SECONDS) -> Callable[[], None]:
    """The process ends ``grace`` seconds after the first SIGTERM or SIGINT it receives, read from
    the signal wakeup fd by a daemon thread (so even while the main thread cannot run its Python
    handler). Returns what puts the previous wakeup fd back and ends the thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler never blocks on it
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    wanted = {int(signal.SIGTERM), int(signal.SIGINT)}

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                data = b""
            if not data:  # the write end closed: restored
                os.close(read_end)
                return
            if wanted & set(data):
                threading.excepthook = _quiet_thread_error
                _end_after(code, grace)

    threading.Thread(target=watch, name="longform-stop-deadline", daemon=True).start()

    def unwatch() -> None:
        signal.set_wakeup_fd(previous)
        os.close(write_end)

    return unwatch
