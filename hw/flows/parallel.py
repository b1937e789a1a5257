"""Running independent jobs (Verilog generation, synthesis) in parallel, with a progress bar.

On this machine's cores by default (a process pool), or on a Dask distributed cluster when given
its scheduler's address (``tcp://host:8786``): a full design-space sweep outgrows one machine, and
the workers of a cluster only need this package installed. Results come back as jobs finish, so
the caller can store each one at once and an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm import tqdm

from bebert.errors import BebertError


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_parallel(function: Callable, items: Iterable, scheduler: str | None = None, workers: int | None = None,
                 desc: str = "jobs") -> Iterator[tuple[object, object]]:
    """Yield (item, function(item)) as each job finishes; a job's exception is raised here."""
    items = list(items)
    if not items:
        return
    with tqdm(total=len(items), desc=desc, unit="job", dynamic_ncols=True) as bar:
        if scheduler:
            yield from _on_dask(function, items, scheduler, bar)
            return
        with ProcessPoolExecutor(max_workers=workers or default_workers()) as pool:
            futures = {pool.submit(function, item): item for item in items}
            try:
                for future in as_completed(futures):
                    bar.update()
                    yield futures[future], future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _on_dask(function: Callable, items: list, scheduler: str, bar) -> Iterator[tuple[object, object]]:
    from distributed import Client, as_completed as dask_completed

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise BebertError(f"Cannot reach the Dask scheduler at {scheduler}: {exc}.") from None
    with client:
        futures = client.map(function, items, pure=False)
        index = {future.key: item for future, item in zip(futures, items)}
        try:
            for future in dask_completed(futures):
                bar.update()
                yield index[future.key], future.result()
        finally:
            client.cancel(futures)
