"""Runs a `ComfyWorker` as the process's main job: until SIGTERM/SIGINT, then drain.

The worker's event loop runs on its own thread. Prefect's engine installs a process-wide SIGTERM handler when
a flow starts on the main thread, which would turn one signal into an exception inside whichever run happened
to be executing; off the main thread it installs nothing, and the signals stay with this module: the first
asks the worker to drain, the second hands the remaining runs back to the pool at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

from deployments.worker import ComfyWorker


def serve_until_signalled(worker: ComfyWorker) -> None:
    """Block until the worker has stopped after a signal (or failed); re-raise its failure."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    signals_seen = 0

    def _run() -> None:
        try:
            loop.run_until_complete(worker.serve(stop))
        except BaseException as exc:  # noqa: BLE001  # handed to the main thread below
            failure.append(exc)
        finally:
            loop.close()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(stop.set if signals_seen == 1 else worker.hand_back_runs)

    thread = threading.Thread(target=_run, name="comfyws-worker")
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        thread.start()
        while thread.is_alive():
            thread.join(timeout=1.0)  # a timed join keeps the main thread responsive to signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise failure[0]
