"""Run one piece of the plan in a forked process while the caller does another (two cores, two independent
numpy loops: the plan's Monte Carlo and the stock-alone answer).

    job = in_background(fn)      # starts fn() in a forked child where that is safe, else does nothing yet
    ...                          # the caller's own work
    value = job()                # fn()'s value (computed here, inline, when no child was started)

A child is forked only on a POSIX system with the "fork" start method, at least two CPUs, and from the main
thread (a server's worker threads plan inline: forking a multi-threaded process is where locks get stuck). The
child gets the parent's memory copy-on-write, so nothing is pickled on the way in; the value comes back pickled
through a pipe. An exception in the child is raised again here; a child that dies without answering makes the
job run inline instead, so the caller always gets fn()'s value or its exception.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _can_fork() -> bool:
    if os.name != "posix" or (os.cpu_count() or 1) < 2:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    return "fork" in multiprocessing.get_all_start_methods()


def in_background(fn: Callable[[], T], *, enabled: bool = True) -> Callable[[], T]:
    """Start fn() in a forked child (see the module docstring); the returned callable waits for its value."""
    if not enabled or not _can_fork():
        return fn
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            out: tuple[str, Any] = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            out = ("error", exc)
        try:
            send.send(out)
        finally:
            send.close()

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()

    def result() -> T:
        try:
            kind, value = recv.recv()
        except (EOFError, OSError):
            kind, value = "lost", None
        finally:
            recv.close()
            proc.join()
        if kind == "ok":
            return value
        if kind == "error":
            raise value
        return fn()                       # the child died without an answer: do the work here
    return result
