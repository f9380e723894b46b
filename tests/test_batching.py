"""app.batching: concurrent /predict uploads read together, each answered with its own result."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.batching import MAX_BYTES_PER_RUN, MAX_UPLOADS_PER_RUN, Batcher
from app.errors import NoInkError, UnsupportedMediaError
from app.predictor import Predictor


class Recorder:
    """A read_many that records the batches it is given."""

    def __init__(self, read_many=lambda uploads: [len(u) for u in uploads]) -> None:
        self.batches: list[list[bytes]] = []
        self._read_many = read_many

    def __call__(self, uploads: list[bytes]) -> list:
        self.batches.append(list(uploads))
        return self._read_many(uploads)


def read_all(batcher: Batcher, uploads: list[bytes]) -> list:
    async def scenario() -> list:
        return await asyncio.gather(*(batcher.read(upload) for upload in uploads))

    return asyncio.run(scenario())


def test_uploads_ready_together_are_read_in_one_call_each_getting_its_own_answer(
    shipped_model: Path, mnist_test, encode
) -> None:
    predictor = Predictor.load(shipped_model, threads=1)
    images = mnist_test[0][:20]
    uploads = [encode(image) for image in images]
    recorder = Recorder(predictor.predict_many)
    sizes: list[int] = []
    results = read_all(Batcher(recorder, sizes.append), uploads)
    assert len(recorder.batches) == 1 and sizes == [20]
    # Each image's own distances, which differ from image to image: no answer went astray.
    assert results == [predictor.predict(upload) for upload in uploads]


def test_bad_uploads_get_their_own_error_without_failing_their_batch(
    shipped_model: Path, mnist_test, encode
) -> None:
    predictor = Predictor.load(shipped_model, threads=1)
    uploads = [encode(mnist_test[0][0]), b"not an image", encode(np.zeros((28, 28), np.uint8))]
    seven, junk, blank = read_all(Batcher(predictor.predict_many), uploads)
    assert seven["digit"] == 7
    assert isinstance(junk, UnsupportedMediaError)
    assert isinstance(blank, NoInkError)


def test_a_lone_upload_is_read_at_once() -> None:
    recorder = Recorder()

    async def scenario() -> int:
        return await asyncio.wait_for(Batcher(recorder).read(b"abc"), timeout=1)

    assert asyncio.run(scenario()) == 3
    assert recorder.batches == [[b"abc"]]


def test_uploads_of_later_turns_form_new_batches() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder)

    async def scenario() -> list:
        first = await asyncio.gather(batcher.read(b"a"), batcher.read(b"bb"))
        second = await batcher.read(b"ccc")
        return [*first, second]

    assert asyncio.run(scenario()) == [1, 2, 3]
    assert recorder.batches == [[b"a", b"bb"], [b"ccc"]]


def test_batches_are_capped_by_count_and_bytes() -> None:
    recorder = Recorder()
    many = [bytes([i % 256]) for i in range(MAX_UPLOADS_PER_RUN + 5)]
    assert read_all(Batcher(recorder), many) == [1] * len(many)
    assert [len(b) for b in recorder.batches] == [MAX_UPLOADS_PER_RUN, 5]

    recorder = Recorder()
    large = [b"x" * (MAX_BYTES_PER_RUN // 2 + 1)] * 3  # two of them are over the limit
    assert read_all(Batcher(recorder), large) == [len(large[0])] * 3
    assert [len(b) for b in recorder.batches] == [1, 1, 1]

    recorder = Recorder()
    huge = [b"x" * (MAX_BYTES_PER_RUN + 1), b"y"]  # one alone over the limit is still read
    assert read_all(Batcher(recorder), huge) == [MAX_BYTES_PER_RUN + 1, 1]
    assert [len(b) for b in recorder.batches] == [1, 1]


def test_a_cancelled_request_is_dropped_and_the_others_are_answered() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder)

    async def scenario() -> list:
        left = asyncio.ensure_future(batcher.read(b"gone"))
        stays = asyncio.ensure_future(batcher.read(b"here"))
        await asyncio.sleep(0)  # both are queued
        left.cancel()
        return [await stays, left.cancelled()]

    assert asyncio.run(scenario()) == [4, True]
    assert recorder.batches == [[b"here"]]


def test_a_failing_read_fails_every_request_of_the_batch_and_not_the_next() -> None:
    calls = 0

    def flaky(uploads: list[bytes]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("onnxruntime failed")
        return [len(u) for u in uploads]

    batcher = Batcher(flaky)

    async def scenario() -> list:
        first = await asyncio.gather(batcher.read(b"a"), batcher.read(b"b"), return_exceptions=True)
        return [*first, await batcher.read(b"cc")]

    failed_a, failed_b, later = asyncio.run(scenario())
    assert isinstance(failed_a, RuntimeError) and isinstance(failed_b, RuntimeError)
    assert later == 2


@pytest.mark.parametrize("concurrent", [1, 8, 32])
def test_every_request_of_a_burst_is_answered_through_the_api(
    client, mnist_test, encode, concurrent: int
) -> None:
    """Concurrent /predict requests through the live app, batched or not, each get the
    answer for their own digit (the first 32 test digits include all ten)."""
    import httpx

    uploads = [encode(image) for image in mnist_test[0][:concurrent]]
    predictor = client.app.state.service.predictor
    expected = [predictor.predict(upload)["digit"] for upload in uploads]

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answers = await asyncio.gather(
                *(
                    http.post("/predict", content=u, headers={"Content-Type": "image/png"})
                    for u in uploads
                )
            )
        return [answer.json()["digit"] for answer in answers]

    registry = client.app.state.service.metrics.registry
    before = registry.get_sample_value("lenet5_inference_batch_size_count") or 0
    assert asyncio.run(burst()) == expected
    runs = registry.get_sample_value("lenet5_inference_batch_size_count") - before
    if concurrent == 1:
        assert runs == 1
    else:  # requests that were ready together shared model runs
        assert runs < concurrent
