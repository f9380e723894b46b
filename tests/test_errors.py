"""The domain errors and the one table of their HTTP statuses."""

from app import errors
from app.errors import http_status


def test_every_request_error_kind_has_its_own_status() -> None:
    kinds, unseen = set(), [errors.RequestError]
    while unseen:  # every descendant, not only the direct subclasses
        kind = unseen.pop()
        kinds.add(kind)
        unseen += kind.__subclasses__()
    assert kinds == set(errors.STATUS), "a kind without a status falls back to its base's"


def test_a_kind_answers_with_its_status() -> None:
    assert http_status(errors.TooLargeError("x")) == 413
    assert http_status(errors.ClientLeftError("x")) == 400
    assert http_status(errors.UnsupportedMediaError("x")) == 415
    assert http_status(errors.StoreFullError("x")) == 507
