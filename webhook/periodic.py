"""A function run every N seconds in a daemon thread, surviving its own failures.

Certificate renewal, reloading and syncing and the orphan-Secret sweep all need the same loop: wait,
run, log a failure without dying (the old state keeps serving), stop promptly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    def __init__(self, fn: Callable[[], object], *, name: str, log: logging.Logger, what: str):
        self.fn, self.name, self.log, self.what = fn, name, log, what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval: float) -> None:
        """Run ``fn`` every ``interval`` seconds (first run after one interval); idempotent."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.fn()
                except Exception as exc:  # keep going: the previous state keeps serving
                    self.log.warning("%s failed: %s", self.what, exc)

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
