"""Grading on a Dask cluster: `autograder grade A --cluster tcp://host:8786`.

The grader does everything it does locally (assembling each submission from the
instructor's notebook, scoring against the references, writing results and the
gradebook) except running the notebooks: each run is a Dask task. A task carries
the rewritten cells and the limits, nothing else: workers need neither the
course folder nor the references, and no expected value ever leaves the grader.

On each Dask worker a plugin (`Sandboxes`) starts ``--workers`` sandboxes, the
same bubblewrap sandboxes as local grading, warmed up once; tasks run in them
one at a time each. A worker that dies mid-task is replaced by Dask, which runs
its task again elsewhere; the grader records each submission once, when its
task returns. If the scheduler goes away, `PoolLost` stops the command, and
running it again grades what is left, as after an interrupted local run.

This module is imported only with ``--cluster``.
"""

import asyncio
import logging
from dataclasses import asdict

from distributed import Client, WorkerPlugin, get_worker

from autograder.grading.sandbox import DEFAULT_LIMITS, Limits, PoolLost, RunEvents, WorkerPool

PLUGIN = "autograder-sandboxes"
CONNECT_SECONDS = 10  # to connect, and to reconnect when the scheduler is lost
WORKERS_SECONDS = 60  # for a first worker to join


class Sandboxes(WorkerPlugin):
    """Started sandboxes on one Dask worker, each running one notebook at a time: ``size`` of
    them, or as many as the worker has threads (``dask worker --nthreads``)."""

    def __init__(self, size: int | None, unsafe: bool = False):
        self.size, self.unsafe = size, unsafe
        self.pool: WorkerPool | None = None

    def setup(self, worker) -> None:
        self.pool = WorkerPool(self.size or worker.state.nthreads, unsafe=self.unsafe)

    def teardown(self, worker) -> None:
        if self.pool is not None:
            self.pool.close()


def run_cells(cells: list[dict], limits: dict, mode: str) -> RunEvents:
    """The task: run one notebook's cells in a sandbox of this worker."""
    return get_worker().plugins[PLUGIN].pool.run(cells, Limits(**limits), mode)


def _has_sandboxes(size: int | None, unsafe: bool, dask_worker=None) -> bool:
    plugin = dask_worker.plugins.get(PLUGIN)
    return plugin is not None and (plugin.size, plugin.unsafe) == (size, unsafe)


class ClusterPool:
    """What `autograder.grading.grade` needs of a pool of sandboxes (``run``, ``workers``, ``close``),
    served by a Dask cluster: ``per_node`` sandboxes on each of its workers (default: one per
    worker thread)."""

    def __init__(self, address: str, per_node: int | None = None, unsafe: bool = False):
        self.address = address
        # the command says in one line what went wrong; the client's own log would repeat it
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.startswith("distributed"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            self.client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
        except OSError as error:
            raise PoolLost(f"no Dask scheduler answers at {address} ({error})") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            self.client.close()
            raise PoolLost(f"the Dask scheduler at {address} has no workers") from None
        # registered once: a second command finds the sandboxes warm (registering again restarts them)
        if not all(self.client.run(_has_sandboxes, per_node, unsafe).values()):
            self.client.register_plugin(Sandboxes(per_node, unsafe), name=PLUGIN)
        nodes = self.client.scheduler_info()["workers"].values()
        slots = sum(per_node or node["nthreads"] for node in nodes)
        self.workers = [None] * max(1, slots)  # jobs in flight at once

    def run(self, cells: list[dict], limits: Limits = DEFAULT_LIMITS, mode: str = "graded") -> RunEvents:
        future = self.client.submit(run_cells, cells, asdict(limits), mode, pure=False)
        try:
            return future.result()
        except (Exception, asyncio.CancelledError) as error:  # CancelledError is a BaseException
            lost = isinstance(error, asyncio.CancelledError) or type(error).__name__ in (
                "CancelledError",
                "FutureCancelledError",
                "CommClosedError",
            )
            if lost or self.client.status not in ("running", "connecting"):
                raise PoolLost(f"the Dask scheduler at {self.address} went away") from None
            raise

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except (Exception, asyncio.CancelledError):  # the scheduler is gone already
            pass
