"""Dynamic batching: the single-image requests that are ready together are read together.

Under concurrent load, many /predict requests have their upload in hand in the same turn of
the event loop. Reading them one after another in one call, with one onnxruntime run for all,
costs far less per image than a call each: the decoder's, the model's and the answer's code and
data stay in the CPU's caches from one image to the next, and the model's fixed cost per run
is paid once (bench/service.py measures both ways). A lone request is not held back waiting
for company: its call runs in the very next turn of the loop.

The call runs on the event loop, not in a worker thread: a few digits take a fraction of a
millisecond, less than the thread hop would, and the limits below bound how long one call can
hold the loop.
"""

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")

# Most uploads read in one run, so that one run holds the event loop for a few milliseconds
# at most (bench/service.py reports the cost per digit). Not to be confused with
# Settings.max_batch, the most images one /predict/batch request may send.
MAX_UPLOADS_PER_RUN = 64
# Large photos take far longer each to decode: past this many bytes a run is closed.
MAX_BYTES_PER_RUN = 1024 * 1024


class Batcher(Generic[R]):
    """Gathers uploads and reads them with `read_many` (uploads -> one result each, in order)
    once per turn of the event loop."""

    def __init__(
        self,
        read_many: Callable[[list[bytes]], list[R]],
        observe: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._read_many = read_many
        self._observe = observe  # told the size of every batch read
        self._pending: list[tuple[bytes, asyncio.Future[R]]] = []

    async def read(self, upload: bytes) -> R:
        """The result for one upload, read together with those of the same turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((upload, future))
        return await future

    def _flush(self) -> None:
        batch = self._take()
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        # A request whose client left meanwhile has been cancelled: no work for it.
        waiting = [(upload, future) for upload, future in batch if not future.cancelled()]
        if not waiting:
            return
        self._observe(len(waiting))
        try:
            results = self._read_many([upload for upload, _ in waiting])
        except Exception as exc:  # each request then fails as it would have on its own
            for _, future in waiting:
                future.set_exception(exc)
            return
        for (_, future), result in zip(waiting, results, strict=True):
            future.set_result(result)

    def _take(self) -> list[tuple[bytes, asyncio.Future[R]]]:
        """The next batch off the queue: up to MAX_UPLOADS_PER_RUN uploads and
        MAX_BYTES_PER_RUN, and at least one upload however large."""
        count = size = 0
        for upload, _ in self._pending[:MAX_UPLOADS_PER_RUN]:
            size += len(upload)
            if count and size > MAX_BYTES_PER_RUN:
                break
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch
