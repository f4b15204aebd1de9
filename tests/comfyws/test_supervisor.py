"""The supervisor with small real child processes: stop order, the workers' grace and hand-back signal, SIGKILL
for what ignores SIGTERM (with whatever it started), restarts with backoff, and run.json."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyws.supervisor import ChildSpec, ChildState, StopTier, Supervisor
from tests.comfyws.service import sessions_members, still_alive
from tests.fixtures.prefect_server import wait_until

# A child that notes each SIGTERM it gets in `journal` (and exits on the second one, as a worker does).
_NOTES_SIGTERMS = """
import signal, sys, time
journal, name, exits_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = 0
def on_term(signum, frame):
    global seen
    seen += 1
    with open(journal, "a") as out:
        out.write(f"{time.monotonic():.3f} {name} SIGTERM {seen}\\n")
    if seen >= exits_after:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
with open(journal, "a") as out:
    out.write(f"{time.monotonic():.3f} {name} ready 0\\n")
while True:
    time.sleep(0.05)
"""
# A child that ignores SIGTERM and starts a grandchild that does too.
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
time.sleep(300)
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _supervisor(tmp_path: Path, **kwargs: float) -> Supervisor:
    return Supervisor(log_dir=tmp_path / "logs", state_path=tmp_path / "run.json", **kwargs)  # type: ignore[arg-type]


def _journal(path: Path) -> list[tuple[float, str, str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(float(at), name, f"{what} {count}") for at, name, what, count in (line.split() for line in lines)]


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = _supervisor(tmp_path, stop_timeout=2.0)
    yield sup
    sup.stop_all(grace=0)  # whatever a failed test left running


def test_stop_goes_tier_by_tier_and_workers_get_their_grace_then_a_second_sigterm(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    started = {}
    for name, tier, exits_after in (("prefect", StopTier.SCHEDULER, 1), ("worker", StopTier.WORKERS, 2),
                                    ("api", StopTier.FRONT, 1)):
        started[name] = supervisor.add(ChildSpec(name, _python(_NOTES_SIGTERMS, str(journal), name,
                                                               str(exits_after)), tier))
    wait_until(lambda: sum(what == "ready 0" for _, _, what in _journal(journal)) == 3, timeout=30.0,
               what="the children to handle SIGTERM")

    began = time.monotonic()
    supervisor.stop_all(grace=1.5)

    events = [event for event in _journal(journal) if event[2] != "ready 0"]
    assert [(name, what) for _, name, what in events] == [
        ("api", "SIGTERM 1"), ("worker", "SIGTERM 1"), ("worker", "SIGTERM 2"), ("prefect", "SIGTERM 1")]
    first, second = [at for at, name, _ in events if name == "worker"]
    assert 1.4 <= second - first < 4.0, "the second SIGTERM (hand back) comes when the grace is over"
    assert time.monotonic() - began < 10.0
    assert all(child.state is ChildState.STOPPED and not child.alive for child in started.values())
    assert json.loads((tmp_path / "run.json").read_text())["phase"] == "stopped"


def test_a_child_ignoring_sigterm_is_killed_with_what_it_started(supervisor: Supervisor) -> None:
    child = supervisor.add(ChildSpec("stubborn", _python(_STUBBORN), StopTier.NODES))
    assert child.process is not None
    group = wait_until(lambda: len(m := sessions_members({child.process.pid})) >= 2 and m, timeout=30.0,
                       what="the grandchild to start")

    supervisor.stop_all(grace=0)

    assert still_alive(group) == []


def test_a_crashed_child_is_restarted_with_growing_delays_and_logged(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    crasher = supervisor.add(ChildSpec("crasher", _python("import time, sys; time.sleep(0.3); sys.exit(3)"),
                                       StopTier.NODES))
    launches: list[float] = []
    pids: set[int] = set()

    def restarted_twice() -> bool:
        supervisor.poll()
        if crasher.process is not None and crasher.process.pid not in pids:
            pids.add(crasher.process.pid)
            launches.append(time.monotonic())
        return len(launches) >= 3

    wait_until(restarted_twice, timeout=30.0, interval=0.05, what="two restarts")
    gaps = [b - a for a, b in itertools.pairwise(launches)]
    # Each gap is the child's 0.3 s life plus the backoff: 1 s, then 2 s.
    assert 1.2 <= gaps[0] < 2.8 and 2.2 <= gaps[1] < 4.5, gaps
    assert (crasher.restarts, crasher.last_exit) == (2, 3)
    assert "crasher (pid" in caplog.text and "exited with 3" in caplog.text
    state = json.loads(supervisor.state_path.read_text())  # type: ignore[union-attr]
    assert {"name": "crasher", "restarts": 2, "last_exit": 3}.items() <= state["children"][0].items()
    assert state["pid"] == os.getpid()


def test_a_frozen_child_is_woken_to_stop_cleanly(supervisor: Supervisor, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    child = supervisor.add(ChildSpec("frozen", _python(_NOTES_SIGTERMS, str(journal), "frozen", "1"), StopTier.NODES))
    wait_until(lambda: _journal(journal), timeout=30.0, what="the child to handle SIGTERM")
    assert child.process is not None
    os.kill(child.process.pid, signal.SIGSTOP)

    supervisor.stop_all(grace=0)

    assert [what for _, _, what in _journal(journal)] == ["ready 0", "SIGTERM 1"], "it stopped itself, not killed"
    assert child.process.returncode == 0
