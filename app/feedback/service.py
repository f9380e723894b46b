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

from app.errors import MalformedRequestError
from app.feedback.dataset import LABELS
from app.feedback.store import Record, Store
from app.imaging import frames_to_inputs
from app.predictor import Predictor

MAX_TAG = 64
OFF = "feedback is off on this service (LENET5_FEEDBACK=off)"


def check_label(label: str | None) -> str:
    if label is None:
        raise MalformedRequestError("send the correct answer in the field 'label': 0 … 9, or none")
    text = label.strip().lower()
    if text not in LABELS:
        raise MalformedRequestError(
            f"label must be a digit 0 … 9 or 'none' (not a digit), not {label!r}"
        )
    return text


def check_tag(name: str, value: str | None, allowed: tuple[str, ...] = ()) -> str | None:
    if value is None or value == "":
        return None
    if allowed and value not in allowed:
        raise MalformedRequestError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if len(value) > MAX_TAG or not value.isprintable():
        raise MalformedRequestError(
            f"{name} must be printable text of at most {MAX_TAG} characters"
        )
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

    async def submit(
        self, predictor: Predictor, image: bytes, frame: np.ndarray, fields: dict[str, str]
    ) -> dict:
        """Store one correction, `frame` being what the imaging pipeline made of `image`:
        {id, duplicate, label}; RequestError for a bad label."""
        label = check_label(fields.get("label"))
        predicted = check_tag("predicted", fields.get("predicted"), LABELS)
        version = check_tag("version", fields.get("version"))
        source = check_tag("source", fields.get("source"))
        tags = {"predicted": predicted, "version": version, "source": source}
        # Reading and storing in one trip to the pool: a thread hop costs about as much as
        # the model's run (bench/service.py).
        record_id, new = await self._run(
            partial(self._keep, predictor, image, frame, label, **tags)
        )
        return {"id": record_id, "duplicate": not new, "label": label}

    def _keep(
        self, predictor: Predictor, image: bytes, frame: np.ndarray, label: str, **tags: str | None
    ) -> tuple[int, bool]:
        return self.store.add(read(predictor, image, frame, label, **tags))

    async def stats(self) -> dict[str, Any]:
        return await self._run(self.store.stats)

    async def records(self, after: int, limit: int) -> list[dict[str, Any]]:
        return await self._run(partial(self.store.records, after=after, limit=limit))

    async def delete(self, record_id: int) -> bool:
        return await self._run(self.store.delete, record_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()


def read(
    predictor: Predictor, image: bytes, frame: np.ndarray, label: str, **tags: str | None
) -> Record:
    """The record of a correction: the frame the serving model reads and its answer."""
    answer = predictor.answer(predictor.run(frames_to_inputs([frame], predictor.spec))[0])
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
