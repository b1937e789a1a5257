"""Work run in a forked process beside the caller's, for generation steps that Amaranth and NumPy
would otherwise run one after the other on one core."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Outcome:
    """What the forked work returned, set when the ``beside`` block ends."""

    result: object = None


@contextlib.contextmanager
def beside(work: Callable[[], object]):
    """Run ``work`` in a forked process while the body runs; after the body, the yielded Outcome
    holds its return value, or its exception is raised here (an OSError as itself, so the caller's
    one-sentence message names it)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        try:
            send.send((True, work()))
        except BaseException as exc:  # handed to the parent, which raises it
            send.send((False, exc if isinstance(exc, OSError) else RuntimeError(f"{type(exc).__name__}: {exc}")))

    process = context.Process(target=child, daemon=True)
    process.start()
    outcome = Outcome()
    try:
        yield outcome
    finally:
        # read before joining: a result larger than the pipe's buffer blocks the child until read
        done, value = (receive.recv() if process.is_alive() or receive.poll()
                       else (False, RuntimeError("the forked process died")))
        process.join()
    if not done:
        raise value
    outcome.result = value
