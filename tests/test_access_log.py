"""The access log: a line per request, written in the background, on unless turned off."""

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.access_log import LOGGER, MAX_LINES_PER_RECORD, AccessLog
from app.main import create_app
from app.metrics import access_line
from app.serve import log_config


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    def lines(self) -> list[str]:
        return [line for record in self.records for line in record.split("\n")]


@pytest.fixture
def handler() -> Iterator[Lines]:
    """The access logger configured as `lenet5 serve` configures it, into a list."""
    logger = logging.getLogger(LOGGER)
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(logging.NOTSET)


def test_every_line_is_written_in_order_and_none_lost_at_stop(handler: Lines) -> None:
    access_log = AccessLog(logging.getLogger(LOGGER))
    access_log.start()
    sent = [f"line {i}" for i in range(3 * MAX_LINES_PER_RECORD + 7)]
    for line in sent:
        access_log.write(line)
    access_log.stop()
    assert handler.lines() == sent
    assert all(record.count("\n") < MAX_LINES_PER_RECORD for record in handler.records)


def test_the_service_logs_one_line_per_request(handler: Lines, service_settings) -> None:
    with TestClient(create_app(service_settings)) as client:
        client.get("/health")
        client.post("/predict", content=b"not an image", headers={"Content-Type": "image/png"})
        client.get("/nowhere?x=1")
    lines = handler.lines()
    assert len(lines) == 3
    assert lines[0].startswith('testclient:50000 - "GET /health HTTP/1.1" 200 ')
    assert '"POST /predict HTTP/1.1" 415 ' in lines[1]
    assert '"GET /nowhere?x=1 HTTP/1.1" 404 ' in lines[2]
    assert all(line.endswith("ms") for line in lines)


def test_lenet5_serve_turns_the_access_log_on_unless_told_not_to() -> None:
    assert log_config()["loggers"][LOGGER]["level"] == "INFO"
    assert log_config(access_log=False)["loggers"][LOGGER]["level"] == "WARNING"


def test_no_access_log_when_logging_does_not_show_it(handler: Lines) -> None:
    assert AccessLog.configured() is not None
    logging.getLogger(LOGGER).setLevel(logging.WARNING)  # what --no-access-log configures
    assert AccessLog.configured() is None


def test_a_request_line_shows_the_target_as_sent() -> None:
    scope = {"client": ("10.0.0.1", 4321), "method": "GET", "path": "/a b\n", "http_version": "1.1",
             "raw_path": b"/a%20b%0A", "query_string": b"q=%0A"}  # fmt: skip
    line = access_line(scope, 200, 0.00123)
    assert line == '10.0.0.1:4321 - "GET /a%20b%0A?q=%0A HTTP/1.1" 200 1.2ms'
