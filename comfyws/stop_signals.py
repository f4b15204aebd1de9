"""The signals that stop `comfyws run`, caught explicitly rather than left to Python's defaults."""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP, installed explicitly (a background start inherits SIGINT ignored): each one
    is counted; the first asks for an orderly stop, a second one for a quicker one."""

    def __init__(self) -> None:
        self.count = 0
        self.last: signal.Signals | None = None
        self._event = threading.Event()

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signal.Signals(signum)
        self._event.set()

    @property
    def requested(self) -> bool:
        return self.count > 0

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
