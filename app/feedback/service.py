"""Taking corrections in, framework-free: an upload and its label become a stored record.

Each correction is read by the model serving now (so the record says what that model answers
and which model it was) and written to the store, all in a small pool of threads of its own:
a database write can wait on a disk or a network, and the event loop must never wait with it.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from app.feedback.dataset import FRAME, LABELS
from app.feedback.store import Record, Store
from app.predictor import Predictor
from app.preprocess import InputSpec

MAX_TAG = 64


class FeedbackError(ValueError):
    """A correction that cannot be taken as sent; `status_code` is the HTTP status."""

    status_code = 422


class FeedbackOff(Exception):
    """Feedback is switched off on this service."""

    status_code = 404


def frame_of(model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The uint8 FRAME×FRAME digit (MNIST's form) inside a (1, size, size) model input: the
    preprocessing's own frame, mapped back from the model's range to grey levels."""
    pad = (spec.size - spec.frame) // 2
    inner = model_input[0, pad : pad + spec.frame, pad : pad + spec.frame].astype(np.float64)
    levels = (inner - spec.background) * (255 / (spec.ink - spec.background))
    return np.rint(levels).clip(0, 255).astype(np.uint8)


def check_label(label: str | None) -> str:
    if label is None:
        raise FeedbackError("send the correct answer in the field 'label': 0 … 9, or none")
    text = label.strip().lower()
    if text not in LABELS:
        raise FeedbackError(f"label must be a digit 0 … 9 or 'none' (not a digit), not {label!r}")
    return text


def check_tag(name: str, value: str | None, allowed: tuple[str, ...] = ()) -> str | None:
    if value is None or value == "":
        return None
    if allowed and value not in allowed:
        raise FeedbackError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if len(value) > MAX_TAG or not value.isprintable():
        raise FeedbackError(f"{name} must be printable text of at most {MAX_TAG} characters")
    return value


@dataclass
class FeedbackService:
    store: Store
    threads: int = 2
    _pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="feedback")

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def open(self) -> None:
        """Migrate the schema now; a store that is down is retried on its first use."""
        await self._run(self.store.migrate)

    async def submit(self, predictor: Predictor, image: bytes, fields: dict[str, str]) -> dict:
        """Store one correction: {id, duplicate}; PreprocessError for an unreadable image."""
        label = check_label(fields.get("label"))
        predicted = check_tag("predicted", fields.get("predicted"), LABELS)
        version = check_tag("version", fields.get("version"))
        source = check_tag("source", fields.get("source"))
        record = await self._run(
            partial(read, predictor, image, label, predicted=predicted, version=version,
                    source=source)
        )  # fmt: skip
        record_id, new = await self._run(self.store.add, record)
        return {"id": record_id, "duplicate": not new, "label": label}

    async def stats(self) -> dict[str, Any]:
        return await self._run(self.store.stats)

    async def records(self, after: int, limit: int) -> list[dict[str, Any]]:
        return await self._run(partial(self.store.records, after=after, limit=limit))

    async def delete(self, record_id: int) -> bool:
        return await self._run(self.store.delete, record_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()


def read(predictor: Predictor, image: bytes, label: str, **tags: str | None) -> Record:
    """The record of a correction: the serving model's frame of the image and its answer."""
    model_input = predictor.preprocess(image)
    answer = predictor.answer(predictor.run(model_input[None])[0])
    frame = frame_of(model_input, predictor.spec)
    assert frame.shape == (FRAME, FRAME)
    return Record(
        image=image,
        label=label,
        frame=frame.tobytes(),
        model_digit=answer["digit"],
        model_rejected=answer["rejected"],
        model_version=predictor.version,
        model_sha256=predictor.sha256,
        **tags,
    )
