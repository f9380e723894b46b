"""A bounded pool of decoder processes, for the uploads too costly to read on the event loop.

Processes, not threads: Pillow holds the GIL while it decodes some formats (WebP among them),
so a decoder thread would still stall every other request; a process does not, and its memory
is its own, bounded by the per-format pixel limits it applies before decoding (the README's
"How the limits add up" has the measurements behind both choices).

At most `workers` jobs run at once and at most `queue` more wait for a process; past that,
`run` refuses at once with BusyError (the service answers 503 with Retry-After) rather than
letting a backlog grow without bound. A caller cancelled while it waits (its client went
away) leaves the queue without its job ever starting; one cancelled while its job runs lets
that job finish in its process, and nothing the caller would have done after it runs.

Framework-free: asyncio and the standard library only.
"""

import asyncio
import ctypes
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from app.errors import BusyError, DecoderCrashed, RequestError
from app.imaging import Prepared, to_model_inputs
from app.imaging.decode import is_cheap
from model.spec import InputSpec

T = TypeVar("T")
log = logging.getLogger("lenet5")
# What the event loop decodes itself: a PNG this small takes well under a millisecond, less
# than a trip to a decoder process; anything else goes to the pool.
INLINE_BYTES = 64 * 1024
INLINE_PIXELS = 512 * 512
# Cheap uploads of a batch go to a decoder this many at a time.
CHUNK = 64
# Decoders yield the CPU to the event loop when both want it: a heavy upload waits a little
# longer, every other request does not.
NICENESS = 10
# Freed memory a process keeps for its next upload rather than handing it back to the system:
# glibc's defaults return a photo's working arrays (or a large body) after each one and fault
# the pages in again on the next, about 1,500 page faults and a quarter of a decoder's CPU per
# 1-MP photo (bench/service.py --photos-only prints the CPU per request). Larger blocks than
# this, a big image's full decoding, still go back at once.
KEPT_FREE_BYTES = 16 * 1024 * 1024
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


class DecodePool:
    """`workers` processes; `preload` names the modules each one imports before its first job,
    so that the first heavy upload does not also pay for starting Pillow and numpy."""

    def __init__(self, workers: int, queue: int, preload: Sequence[str] = ()) -> None:
        self.workers = workers
        self.queue = queue
        # forkserver, not fork: the parent runs onnxruntime's threads, which a fork would copy
        # in whatever state they are in.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        self._executor = self._new_executor()
        self._slots = asyncio.Semaphore(workers)
        self._waiting = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=self._context, initializer=_start_decoder
        )

    async def start(self) -> None:
        """Start every process now, bound to the running loop, rather than on the first upload."""
        self._slots = asyncio.Semaphore(self.workers)
        await asyncio.gather(*(self.run(int) for _ in range(self.workers)))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a decoder process; BusyError when the queue is full."""
        if self._slots.locked() and self._waiting >= self.queue:
            waiting = self._waiting
            raise BusyError(f"all {self.workers} decoders are busy and {waiting} uploads wait")
        self._waiting += 1
        try:
            await self._slots.acquire()  # cancelled here: the job never starts
        finally:
            self._waiting -= 1
        try:
            executor, job = self._submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        loop = asyncio.get_running_loop()
        # The slot comes back when the process is done, not when an impatient caller leaves.
        job.add_done_callback(lambda _: _call_soon(loop, self._slots.release))
        try:
            return await asyncio.wrap_future(job)
        except BrokenProcessPool as exc:
            self._replace(executor)
            raise DecoderCrashed("the decoder process died while reading this upload") from exc

    def _submit(self, fn: Callable[..., T], *args: Any) -> tuple[ProcessPoolExecutor, Future[T]]:
        executor = self._executor
        try:
            return executor, executor.submit(fn, *args)
        except BrokenProcessPool:  # a process died between two jobs: not this job's doing
            self._replace(executor)
            return self._executor, self._executor.submit(fn, *args)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        # Every job of a broken executor fails with it; the first to notice replaces it.
        if broken is self._executor:
            log.error("a decoder process died; starting new ones")
            self._executor = self._new_executor()
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Cancel the waiting jobs and wait for the processes to exit, a running job first
        finishing (each is bounded by the decoding limits): left running, a decoder outlives
        the service and holds its inherited stdout open, so whatever reads the service's
        output to its end waits for it."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def keep_freed_memory() -> None:
    """Up to KEPT_FREE_BYTES of freed memory stays with this process, with glibc; another C
    library manages its memory its own way and is left to it."""
    # The symbols the process already has, libc's among them: ctypes.util.find_library would
    # run ldconfig in a subprocess at every decoder's start.
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES)
        mallopt(_M_MMAP_THRESHOLD, KEPT_FREE_BYTES)


def _start_decoder() -> None:
    os.nice(NICENESS)
    keep_freed_memory()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(callback)


def cheap(upload: bytes) -> bool:
    """Whether the event loop may decode `upload` itself."""
    return is_cheap(upload, INLINE_BYTES, INLINE_PIXELS)


async def prepare(
    pool: DecodePool,
    uploads: Sequence[bytes],
    limits: tuple[InputSpec, int | None, int],
    explain: bool = False,
) -> Prepared:
    """to_model_inputs(uploads, *limits, explain) in the pool: the cheap uploads CHUNK at a
    time, each costly one alone, and one job after the other, so that one request holds one
    decoder at a time and a cancelled request stops between two jobs."""
    groups: list[list[int]] = []
    for index, upload in enumerate(uploads):
        if cheap(upload) and groups and len(groups[-1]) < CHUNK and cheap(uploads[groups[-1][0]]):
            groups[-1].append(index)
        else:
            groups.append([index])
    inputs: list[np.ndarray] = []
    errors: dict[int, RequestError] = {}
    boxes: list[list[int]] = []
    low_resolution: list[bool] = []
    inks: list[dict[str, Any]] = []
    for group in groups:
        part = await pool.run(to_model_inputs, [uploads[i] for i in group], *limits, explain)
        errors.update({group[i]: error for i, error in part.errors.items()})
        inputs.append(part.inputs)
        boxes.extend(part.boxes)
        low_resolution.extend(part.low_resolution)
        inks.extend(part.inks or ())
    spec = limits[0]
    empty = np.empty((0, 1, spec.size, spec.size), np.float32)
    batch = np.concatenate(inputs) if inputs else empty
    return Prepared(batch, errors, boxes, low_resolution, inks if explain else None)
