"""The lenet5 web service: FastAPI on onnxruntime, never torch.

    uvicorn --factory app.main:create_app        (or: lenet5 serve)

One Predictor serves at a time. A reload (POST /model/reload, or SIGHUP) builds and checks a
new one in a worker thread and then swaps the reference; requests already holding the old one
finish on it, so a reload drops nothing, and a refused file leaves the old model serving.
"""

from importlib.metadata import version as package_version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app import protocol
from app.handlers import HANDLERS
from app.metrics import MetricsMiddleware
from app.routes import feedback, model, operations, predict, read, v2
from app.service import Service, lifespan
from app.settings import Settings
from app.uploads import BodyBudget


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service; `settings` defaults to the LENET5_* environment."""
    service = Service(settings or Settings())
    settings = service.settings
    protocol.configured(settings.max_header_bytes, settings.header_timeout,
                        settings.body_timeout, settings.max_connections)  # fmt: skip
    app = FastAPI(
        title="lenet5",
        version=package_version("lenet5"),
        summary="Handwritten digit recognition with LeNet-5 (LeCun et al., 1998)",
        description=__doc__,
        lifespan=lifespan,
        exception_handlers=HANDLERS,
    )
    app.state.service = service
    predict.add_routes(app)
    app.include_router(read.router)
    app.include_router(model.router)
    app.include_router(operations.router)
    app.include_router(feedback.router)
    app.include_router(v2.router)
    app.mount("/static", StaticFiles(directory=operations.STATIC), name="static")
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=service.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyBudget, limit=settings.max_body_memory_bytes)
    access_log = service.access_log.write if service.access_log else None
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, access_log=access_log)
    return app
