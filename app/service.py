"""The service's state and its life: the Predictor serving, reloading it (POST /model/reload,
or SIGHUP) by swapping the reference (app.main's docstring says what that guarantees), and the
lifespan that loads the first one; plus the dependencies through which the routes reach them.
"""

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request

from app.access_log import AccessLog
from app.batching import Batcher
from app.errors import NotReadyError, RequestError, StoreError
from app.feedback.service import FeedbackService
from app.feedback.store import Store
from app.metrics import Metrics
from app.pool import DecodePool, keep_freed_memory
from app.predictor import ModelError, Predictor
from app.settings import Settings

log = logging.getLogger("lenet5")


@dataclass
class Service:
    """What the routes share: the settings, the metrics, the Predictor now serving, the
    Batcher that runs its model for /predict, and the decoder processes."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    access_log: AccessLog | None = field(default_factory=AccessLog.configured)
    predictor: Predictor | None = None
    batcher: Batcher[dict[str, Any] | RequestError] | None = None
    pool: DecodePool | None = None
    feedback: FeedbackService | None = None  # None when LENET5_FEEDBACK=off
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def load(self) -> Predictor:
        settings = self.settings
        return Predictor.load(
            settings.model_path,
            threads=settings.threads,
            max_pixels=settings.max_image_pixels,
            max_decode_bytes=settings.decode_memory_bytes,
        )

    def serve(self, predictor: Predictor) -> None:
        # Plain assignments, with no await between them: a request sees the old pair or the
        # new one, never a mix.
        self.batcher = Batcher(predictor.predict_many, self.metrics.batch_sizes.observe)
        self.predictor = predictor
        self.metrics.serving(predictor.version, predictor.sha256)
        log.info("serving model %s (sha256 %s) from %s", predictor.version, predictor.sha256,
                 predictor.path)  # fmt: skip

    async def reload(self) -> dict[str, Any]:
        """Load, check and serve the model file again; ModelError leaves the old one serving."""
        async with self.reloading:
            old = self.predictor
            try:
                new = await anyio.to_thread.run_sync(self.load)
            except Exception as exc:
                # Whatever the file did (a bug in reading it included), it does not serve, and
                # a SIGHUP's refusal is logged and counted just like an HTTP one.
                self.metrics.reloads.labels("refused").inc()
                log.error("reload refused, still serving %s: %s", old and old.version, exc,
                          exc_info=not isinstance(exc, ModelError))  # fmt: skip
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(f"{self.settings.model_path}: {exc}") from exc
            self.serve(new)
            self.metrics.reloads.labels("ok").inc()
        return {
            "version": new.version,
            "sha256": new.sha256,
            "changed": old is None or new.sha256 != old.sha256,
            "previous_version": old.version if old else "",
            "previous_sha256": old.sha256 if old else "",
        }

    def reload_in_background(self) -> None:
        """SIGHUP: reload without a caller to answer; the outcome is logged and counted."""
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_quietly(self) -> None:
        with suppress(ModelError):  # already logged and counted by reload()
            await self.reload()

    async def open_feedback(self) -> None:
        """The corrections store, its schema migrated; one that is down is logged and tried
        again on its first use, and /predict serves meanwhile."""
        settings = self.settings
        if settings.feedback == "off":
            return
        url = settings.feedback_url.get_secret_value() if settings.feedback_url else None
        self.feedback = FeedbackService(Store.open(url, settings.feedback_db))
        try:
            await self.feedback.open()
        except StoreError as exc:
            log.error("feedback store not ready, /predict serves meanwhile: %s", exc)
        else:
            log.info("feedback kept in %s", self.feedback.store.name)

    def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        self.predictor = None
        self.batcher = None
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.feedback is not None:
            self.feedback.close()
            self.feedback = None


@contextmanager
def reload_on_sighup(service: Service) -> Iterator[None]:
    """Reload on SIGHUP while serving; each uvicorn worker handles the signals sent to it."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        loop.add_signal_handler(signal.SIGHUP, service.reload_in_background)
    except (ValueError, RuntimeError):
        # Only the main thread can take signals: a TestClient runs the app in another one.
        log.info("not in the main thread: SIGHUP will not reload the model")
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    # A model that does not load stops the start: better no server than one that never answers.
    service.serve(service.load())
    service.reloading = asyncio.Lock()  # bound to this event loop, the one serving
    settings = service.settings
    service.pool = DecodePool(
        settings.decode_workers, settings.decode_queue, ["app.imaging", "app.reading"]
    )
    await service.pool.start()
    keep_freed_memory()  # a photo's body and arrays, in this process too
    await service.open_feedback()
    # Everything loaded so far lives as long as the process: frozen, the garbage collector
    # stops walking it on every full collection, which under load set the latency's tail.
    gc.collect()
    gc.freeze()
    if service.access_log is not None:
        service.access_log.start()
    with reload_on_sighup(service):
        yield
    service.stop()
    if service.access_log is not None:
        service.access_log.stop()


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a hop that
# cost more than the whole prediction.
async def get_service(request: Request) -> Service:
    return request.app.state.service


def serving(
    request: Request,
) -> tuple[Predictor, Batcher[dict[str, Any] | RequestError], DecodePool]:
    """The Predictor serving now, its Batcher and the decoders; 503 before the model is loaded."""
    service: Service = request.app.state.service
    if service.predictor is None or service.batcher is None or service.pool is None:
        raise NotReadyError("the model is not loaded")
    return service.predictor, service.batcher, service.pool


async def get_predictor(request: Request) -> Predictor:
    return serving(request)[0]


ServiceDep = Annotated[Service, Depends(get_service)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
