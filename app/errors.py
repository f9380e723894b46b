"""What can go wrong with a request, as one hierarchy of domain errors, and the one table that
maps each kind to its HTTP status.

The errors say what went wrong, never how to answer it: the image code and the upload reader
raise them without knowing HTTP, and the web layer (app.handlers) answers each with the status
STATUS gives its kind. Pure Python, so training code that imports the image code needs no web
framework.
"""


class RequestError(Exception):
    """A request the service cannot answer as asked; the message says why, for its sender."""


class UnsupportedMediaError(RequestError):
    """Not an image in a supported format, or a Content-Type the route does not take."""


class CorruptImageError(RequestError):
    """A file of a supported image format that is damaged or truncated."""


class TooLargeError(RequestError):
    """A body, an image's pixels or its decoding's memory, or a batch over its limit."""


class UnreadBodyTooLargeError(TooLargeError):
    """A body over its limit, left unread: its connection is closed rather than read on."""


class NoInkError(RequestError):
    """A readable image without any ink on it."""


class MultipleLinesError(RequestError):
    """An image holding more than one line of digits, where one line is read."""


class MalformedRequestError(RequestError):
    """A malformed multipart body, a missing or extra field, or an invalid parameter."""


class InvalidContentLengthError(RequestError):
    """A Content-Length header that is not a number of bytes."""


class ClientLeftError(RequestError):
    """The client went away before sending the whole body."""


class NotReadyError(RequestError):
    """No model is loaded yet."""


class BusyError(RequestError):
    """Every decoder is busy and its queue full, or the uploads held at once are at their
    limit: the same request may succeed a moment later."""

    retry_after = 1  # seconds


class InternalError(RequestError):
    """A bug met while reading one upload (logged): that upload's answer alone, the others
    are answered as usual."""


class DecoderCrashed(InternalError):
    """A decoder process died during a job (killed for its memory, or a crash in a codec)."""


class UnauthenticatedError(RequestError):
    """A request that needs a credential came without a valid one."""


class NotAllowedError(RequestError):
    """An operation this service is configured not to offer."""


class ModelRefusedError(RequestError):
    """A model file that was refused; the previous model keeps serving."""


class InvalidTensorError(RequestError):
    """An inference-protocol (/v2) request, or a tensor in it, that the model cannot take."""


class UnknownModelError(RequestError):
    """An inference-protocol model, version or endpoint that this service does not serve."""


class NotFoundError(RequestError):
    """No such resource: a record that does not exist, or a feature that is switched off."""


class StoreError(RequestError):
    """The feedback store could not do what was asked; nothing already stored is lost."""


class StoreUnavailableError(StoreError):
    """The feedback store cannot be reached, or did not answer in time."""


class StoreFullError(StoreError):
    """The feedback store's disk (or quota) is full."""


STATUS: dict[type[RequestError], int] = {
    RequestError: 422,
    UnsupportedMediaError: 415,
    CorruptImageError: 422,
    TooLargeError: 413,
    UnreadBodyTooLargeError: 413,
    NoInkError: 422,
    MultipleLinesError: 422,
    MalformedRequestError: 422,
    InvalidContentLengthError: 400,
    ClientLeftError: 400,
    NotReadyError: 503,
    BusyError: 503,
    InternalError: 500,
    DecoderCrashed: 500,
    UnauthenticatedError: 401,
    NotAllowedError: 403,
    ModelRefusedError: 409,
    InvalidTensorError: 400,
    UnknownModelError: 404,
    NotFoundError: 404,
    StoreError: 503,
    StoreUnavailableError: 503,
    StoreFullError: 507,
}


def http_status(error: RequestError) -> int:
    """The HTTP status of an error's kind: that of its nearest class in STATUS."""
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)
