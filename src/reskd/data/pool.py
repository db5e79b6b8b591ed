"""Worker pools for data preparation that stop within a second of a signal.

Data preparation (`reskd data check`, `data extract`, `data prepare`, `data synth`, the decode
cache of `data.cache_decoded`) maps one function over many videos in forked worker processes.
`pool_map` yields the results as they come and polls `should_stop()` (the CLI wires SIGINT and
SIGTERM to it with `reskd.runs.StopOnSignals`) every POLL_S seconds, also while a worker is in
the middle of a long video. When it returns a reason, the workers are terminated at once, their
current item abandoned, and `Stopped` is raised with a message that says how far it got and
what was kept. Callers write only complete items under their final names (temp name, then
rename), so what a stop leaves never looks complete. Workers ignore Ctrl-C (the main process
decides when to stop), die on SIGTERM and run a little below the main process's priority.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

POLL_S = 0.2  # how often a waiting main process asks should_stop()
NICE = 5  # workers' niceness above the main process

StopFn = Callable[[], "str | None"]  # -> the signal's name once one arrived, else None


class Stopped(RuntimeError):
    """Data preparation stopped on request (a signal); exit status 130 (SIGINT) or 143."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.exit_code = 130 if reason == "SIGINT" else 143


def check_stop(should_stop: StopFn | None, message: Callable[[str], str]) -> None:
    """Raises Stopped(reason, message(reason)) when `should_stop()` gives a reason."""
    reason = should_stop() if should_stop is not None else None
    if reason:
        raise Stopped(reason, message(reason))


def _init_worker(initializer: Callable | None, initargs: tuple) -> None:
    # Ctrl-C reaches the whole process group: only the main process acts on it. SIGTERM from
    # Pool.terminate() must end a worker even if it inherited a handler that ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A little below the main process, which then gets the CPU to act on a signal at once
    # even when the workers keep every core busy (measured: 3 s to stop on 2 busy cores
    # without it).
    os.nice(NICE)
    if initializer is not None:
        initializer(*initargs)


def _call(task: tuple[Callable, list[tuple[int, Any]]]) -> list[tuple[int, Any]]:
    fn, chunk = task
    return [(index, fn(job)) for index, job in chunk]


def pool_map(fn: Callable[[Any], Any], jobs: Sequence, *, workers: int,
             should_stop: StopFn | None = None, what: str = "working",
             kept: str = "nothing was written", initializer: Callable | None = None,
             initargs: tuple = (), chunksize: int = 1) -> Iterator[tuple[int, Any]]:
    """Yields (index in `jobs`, fn(job)) in completion order: `workers` forked processes (0 or
    1: this process, `initializer` run here first). Raises Stopped when `should_stop()` gives
    a reason: "stopped by SIGTERM while {what}: {done} of {total} done; {kept}"."""
    total, done = len(jobs), 0

    def message(reason: str) -> str:
        return f"stopped by {reason} while {what}: {done} of {total} done; {kept}"

    if workers <= 1 or total <= 1:
        if initializer is not None:
            initializer(*initargs)
        for index, job in enumerate(jobs):
            check_stop(should_stop, message)
            yield index, fn(job)
            done += 1
        return
    # fork where the platform has it: workers need only numpy and PyAV, and fork (unlike
    # spawn) works from a caller's script without a __main__ guard.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ctx.Pool(min(workers, total), _init_worker, (initializer, initargs))
    try:
        indexed = list(enumerate(jobs))
        chunks = [(fn, indexed[i:i + chunksize]) for i in range(0, total, max(1, chunksize))]
        results = pool.imap_unordered(_call, chunks)  # one chunk per task: next() can time out
        while done < total:
            try:
                items = results.next(timeout=POLL_S)
            except multiprocessing.TimeoutError:
                check_stop(should_stop, message)
                continue
            check_stop(should_stop, message)
            for item in items:
                yield item
                done += 1
        # workers leave on their own: Pool.terminate()'s SIGTERM can be lost in a worker forked a
        # moment before (Python drops signals that arrive during its fork), and join then waits
        pool.close()
        pool.join()
    except BaseException:
        _terminate(pool)
        raise


def _terminate(pool) -> None:
    """Pool.terminate(), with SIGKILL for workers still alive after 2 s (a lost SIGTERM)."""
    stopper = threading.Thread(target=pool.terminate, daemon=True)
    stopper.start()
    stopper.join(2.0)
    if stopper.is_alive():
        for process in list(getattr(pool, "_pool", [])):
            process.kill()
        stopper.join(2.0)
