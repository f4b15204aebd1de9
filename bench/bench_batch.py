"""Issue 12 figures on the embedded default (SQLite Prefect, one simulated node): a 1,000-item batch's submit
time (target < 2 s), items per second on an instant node, the overhead and p95 start latency of interactive jobs
sent during the batch (against the same jobs with no batch), and the peak RSS of the API and the worker.

Run: .venv/bin/python bench/bench_batch.py [--items 1000] [--window 90] [--interactive 15]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from harness import BenchStack, bench_stack, percentile, rss_mb

FINAL = ("completed", "failed", "cancelled")


class PeakRss:
    """Samples the RSS of the API and the worker every 0.2 s in a thread; keeps the peaks."""

    def __init__(self, stack: BenchStack) -> None:
        self.pids = {"api": stack.api_process.pid, "worker": stack.worker_pid}
        self.peak = dict.fromkeys(self.pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                try:
                    self.peak[name] = max(self.peak[name], rss_mb(pid))
                except OSError:
                    continue

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def interactive(http: httpx.Client, count: int) -> tuple[list[float], list[float]]:
    """Sequential normal-priority jobs: (wall time submit -> completed, start latency created -> started)."""
    walls, starts = [], []
    for i in range(count):
        begin = time.perf_counter()
        task = http.post("/api/v2/tasks/text-to-image", json={
            "prompt": f"interactive {i}", "seed": i, "steps": 1, "width": 64, "height": 64}).json()
        while task["status"] not in FINAL:
            time.sleep(0.02)
            task = http.get(f"/api/v2/tasks/{task['task_id']}").json()
        walls.append(time.perf_counter() - begin)
        starts.append(_when(task["started_at"]) - _when(task["created_at"]))
    return walls, starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--window", type=float, default=90.0, help="Seconds of batch throughput to measure")
    parser.add_argument("--interactive", type=int, default=15, help="Interactive jobs before and during")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with bench_stack(step_delay=0.0, max_concurrent=8) as stack, PeakRss(stack) as rss:
        http = httpx.Client(base_url=stack.api_url, timeout=120,
                            headers={"Authorization": f"Bearer {stack.token}"})
        idle_wall, idle_start = interactive(http, args.interactive)
        items = [{"prompt": f"item {i}", "seed": i} for i in range(args.items)]
        begin = time.perf_counter()
        response = http.post("/api/v2/batches", json={
            "task_type": "text-to-image", "defaults": {"steps": 1, "width": 64, "height": 64}, "items": items})
        submit_s = time.perf_counter() - begin
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        busy_wall, busy_start = interactive(http, args.interactive)
        deadline = begin + args.window
        batch: dict[str, Any] = {}
        while time.perf_counter() < deadline:
            batch = http.get(f"/api/v2/batches/{batch_id}").json()
            if batch["status"] != "running":
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - begin
        done = batch["counts"].get("completed", 0)
        if batch["status"] == "running":
            http.delete(f"/api/v2/batches/{batch_id}")
        rows += [
            (f"{args.items}-item batch: submit (202 with every item a job)", f"{submit_s:.2f} s (target < 2 s)"),
            ("batch items per second, instant node", f"{done / elapsed:.1f} items/s ({done} in {elapsed:.0f} s)"),
            (f"interactive jobs, no batch ({args.interactive}): wall p50 / p95",
             f"{percentile(idle_wall, .5)*1000:.0f} / {percentile(idle_wall, .95)*1000:.0f} ms"),
            ("interactive jobs during the batch: wall p50 / p95",
             f"{percentile(busy_wall, .5)*1000:.0f} / {percentile(busy_wall, .95)*1000:.0f} ms"),
            ("start latency (created -> running) no batch / during: p95",
             f"{percentile(idle_start, .95)*1000:.0f} / {percentile(busy_start, .95)*1000:.0f} ms"),
            ("peak RSS API / worker", f"{rss.peak['api']:.0f} / {rss.peak['worker']:.0f} MB"),
        ]
    width = max(len(k) for k, _ in rows)
    print("\nComfyUI Web Service batch benchmark")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
