"""The access log: one line per request, handed over where the request ends and written by a
background thread, so that a request costs the event loop one queue put rather than a pass
through the logging machinery. Lines reach the log within a twentieth of a second.

The lines go to the `lenet5.access` logger, which `lenet5 serve` sends to stdout (uvicorn's
own access log is then off); the thread hands every line that has queued up since its last
write to the logger as one record. With no handler for that logger (an app built in tests, or
run by uvicorn directly with its own access log), there is no access log and no thread.
"""

import logging
import queue
import threading
import time

LOGGER = "lenet5.access"
# Lines handed to the logger in one record at most: bounds a record's size under a burst.
MAX_LINES_PER_RECORD = 1000
# Pause after each write, so that under load lines gather into few large writes instead of
# waking the thread (and taking the interpreter's lock from the event loop) for every line.
WRITE_INTERVAL_SECONDS = 0.05


class AccessLog:
    """Lines in, written in the background; `write` is the hot path."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.write = self._queue.put  # bound once: one C call per request
        self._thread: threading.Thread | None = None

    @classmethod
    def configured(cls) -> "AccessLog | None":
        """The access log if logging is configured to show it, else None."""
        logger = logging.getLogger(LOGGER)
        if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
            return cls(logger)
        return None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=LOGGER, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            lines = []
            while line is not None:
                lines.append(line)
                if len(lines) == MAX_LINES_PER_RECORD:
                    break
                try:
                    line = self._queue.get_nowait()
                except queue.Empty:
                    break
            if lines:
                self._logger.info("\n".join(lines))
            if line is None:
                return
            if len(lines) < MAX_LINES_PER_RECORD:  # the queue was emptied: let it fill again
                time.sleep(WRITE_INTERVAL_SECONDS)
