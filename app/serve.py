"""Serve the API with uvicorn: `lenet5 serve`. Every other setting comes from LENET5_* variables
(see the README's configuration section)."""

import argparse
import copy
import os
import resource
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each with its own model, decoders and /metrics (default: "
        "%(default)s); one per container is the supported way, scale with containers",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="ONNX model file (default: LENET5_MODEL_PATH, else the shipped model)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log every request to stdout (the log costs little: bench/service.py)",
    )


def main(args: argparse.Namespace) -> int:
    if args.model is not None:
        # Through the environment, so that every worker process builds the same Settings.
        os.environ["LENET5_MODEL_PATH"] = str(args.model.resolve())
    raise_open_file_limit()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools with the header size, read timeouts and connection cap it lacks; the
        # limits come from the LENET5_* settings, applied by create_app in each worker.
        http="app.protocol:GuardedHttpToolsProtocol",
        # The service writes its own access log (app/access_log.py), at a fraction of the cost.
        access_log=False,
        log_config=log_config(access_log=not args.no_access_log),
    )
    return 0


def raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one, so that the connection cap
    (LENET5_MAX_CONNECTIONS), not the file limit, is what refuses connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def log_config(access_log: bool = True) -> dict[str, Any]:
    """uvicorn's logging, plus the service's own messages (model loaded, reload refused) and,
    unless turned off, its access log on stdout, one request a line."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["lenet5"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["formatters"]["lenet5.access"] = {"format": "%(message)s"}
    config["handlers"]["lenet5.access"] = {
        "class": "logging.StreamHandler",
        "formatter": "lenet5.access",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["lenet5.access"] = {
        "handlers": ["lenet5.access"],
        "level": "INFO" if access_log else "WARNING",
        "propagate": False,
    }
    return config
