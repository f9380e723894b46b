"""app.pool: the bounded decoder processes, on their own."""

import asyncio
import os
import resource
import time
from pathlib import Path

import pytest

from app.errors import BusyError
from app.imaging import to_model_inputs
from app.pool import NICENESS, DecodePool
from training import photos


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])


def test_the_queue_is_bounded_and_a_cancelled_waiter_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    async def scenario() -> None:
        pool = DecodePool(1, queue=1)
        try:
            await pool.start()
            running = asyncio.create_task(pool.run(time.sleep, 0.5))
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(pool.run(marker.touch))
            await asyncio.sleep(0.05)
            with pytest.raises(BusyError, match="1 uploads wait"):
                await pool.run(os.getpid)
            waiting.cancel()
            await running  # the running job finishes
            assert await pool.run(os.getpid) != os.getpid()  # and the slot came back
        finally:
            pool.close()

    asyncio.run(scenario())
    assert not marker.exists()


def page_faults_reading(upload: bytes, times: int) -> int:
    """Minor page faults of this process while it reads `upload` `times` times over."""
    to_model_inputs([upload])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        to_model_inputs([upload])
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_decoder_reads_photo_after_photo_in_memory_it_kept(mnist_test) -> None:
    # With glibc's defaults a decoder handed a photo's arrays back after each one and faulted
    # the same pages in again on the next: some 1,500 page faults per 1-MP photo.
    images, labels = mnist_test
    upload = photos.digit_photos(images[:1], labels[:1], "plain paper", seed=3)[0][0]

    async def scenario() -> int:
        pool = DecodePool(1, queue=0)
        try:
            await pool.start()
            return await pool.run(page_faults_reading, upload, 10)
        finally:
            pool.close()

    assert asyncio.run(scenario()) < 10 * 100


def test_decoders_yield_the_cpu_to_the_event_loop() -> None:
    async def scenario() -> int:
        pool = DecodePool(1, queue=0)
        try:
            await pool.start()
            return niceness(await pool.run(os.getpid))  # while the decoder still runs
        finally:
            pool.close()

    assert asyncio.run(scenario()) == min(19, niceness(os.getpid()) + NICENESS)


def test_closing_the_pool_ends_its_decoder_processes() -> None:
    async def scenario() -> list[int]:
        pool = DecodePool(2, queue=0)
        await pool.start()
        pids = {await pool.run(os.getpid) for _ in range(8)}
        pool.close()
        return sorted(pids)

    for pid in asyncio.run(scenario()):
        # The forkserver, their parent, reaps them: gone, not left a zombie.
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), pid
