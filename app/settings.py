"""Service settings, read from LENET5_* environment variables."""

import os
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.imaging.decode import DEFAULT_DECODE_MEMORY

MiB = 1024 * 1024


def data_home() -> Path:
    """Where the SQLite feedback store lives unless told: $XDG_DATA_HOME/lenet5."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "lenet5"


def shipped_model() -> Path:
    """The model file installed with the `model` package."""
    return Path(str(files("model") / "lenet5.onnx"))


class Settings(BaseSettings):
    """Everything the service can be told; each field is also the environment variable
    LENET5_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="LENET5_", extra="ignore")

    model_path: Path = Field(
        default_factory=shipped_model,
        description="ONNX model file to serve, and to reload from on SIGHUP or /model/reload",
    )
    threads: int = Field(
        default=1,
        ge=1,
        description="onnxruntime intra-op threads per worker; 1 is fastest for a digit",
    )
    max_upload_bytes: int = Field(
        default=10 * MiB,
        ge=1,
        description="largest /predict request body, and largest image of a batch or /v2 request",
    )
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="largest image (width × height) decoded"
    )
    max_batch: int = Field(
        default=256, ge=1, description="most images in one /predict/batch or /v2 infer request"
    )
    max_batch_bytes: int = Field(
        default=32 * MiB, ge=1, description="largest /predict/batch or /v2 infer body"
    )
    max_body_memory_bytes: int = Field(
        default=48 * MiB,
        ge=1,
        description="bytes of request bodies held at once, all requests together; 503 past it",
    )
    decode_workers: int = Field(
        default=1,
        ge=1,
        description="decoder processes per worker, for the uploads too costly to decode inline",
    )
    decode_queue: int = Field(
        default=16,
        ge=0,
        description="uploads that may wait for a decoder; past that, 503 with Retry-After",
    )
    decode_memory_bytes: int = Field(
        default=DEFAULT_DECODE_MEMORY,
        ge=MiB,
        description="most memory one decode may take: sets each format's pixel limit",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="longest request line and headers; 431 past it",
    )
    header_timeout: float = Field(
        default=10,
        gt=0,
        description="seconds a connection has to send a request's line and headers",
    )
    body_timeout: float = Field(
        default=10,
        gt=0,
        description="seconds a request body may stall before its connection is closed",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="open connections per worker; a new one past it closes the longest idle",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser, comma-separated; '*' for any",
    )
    reload_token: SecretStr | None = Field(
        default=None,
        description="bearer token that turns on POST /model/reload; unset leaves it off",
    )

    feedback: Literal["on", "off"] = Field(
        default="on",
        description="on: POST /feedback stores corrections; off: no store, its routes 404/403",
    )
    feedback_db: Path = Field(
        default_factory=data_home,
        description="directory of the SQLite feedback store (feedback.sqlite3, WAL mode)",
    )
    feedback_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host/db to keep feedback in PostgreSQL instead",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("reload_token", mode="after")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty LENET5_RELOAD_TOKEN= must not turn reloading on with an empty password.
        return value if value is not None and value.get_secret_value() else None
