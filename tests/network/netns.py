"""Private test networks of Linux network namespaces: this namespace plays the central "api" host and every
worker host is its own namespace, joined to a bridge here by a veth pair. Needs root (CAP_NET_ADMIN) and `ip`.

Only private test addresses on links made here are used (10.77.N.0/24, N picked so it collides with nothing on
this machine); nothing is routed anywhere else. Every namespace is named `cwt-<pid>-...` and every link made here
carries the alias `comfyws-test pid=<pid>`, so what a killed test run left behind is found and removed next time.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_PREFIX = "10.77"
NAMESPACE_PREFIX = "cwt-"
LINK_ALIAS = "comfyws-test pid="
_NAMESPACE_RE = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)-")


class NetworkError(RuntimeError):
    """An `ip` command failed while building or tearing down the test network."""


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here (None when they can): a probe namespace is made and removed."""
    if sys.platform != "linux":
        return "network namespaces exist only on Linux"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"the `{tool}` tool ({package}) is not installed"
    if os.geteuid() != 0:
        return "`ip netns add` needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run the test suite as root"
    probe = f"{NAMESPACE_PREFIX}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "delete", probe)
    except NetworkError as exc:
        return f"`ip netns add` is not permitted here: {exc}"
    return None


@dataclass(frozen=True)
class Host:
    """One machine of the test network: its namespace (None: the namespace this process runs in) and address."""

    label: str
    address: str
    namespace: str | None = None
    link: str | None = None  # the api side of its veth pair

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run on this host: in its network namespace, under its own hostname (the label)."""
        if self.namespace is None:
            return list(argv)
        # unshare and sh exec in turn, so the process started is `argv` itself (its pid is the one we hold).
        rename = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', self.label]
        return ["ip", "netns", "exec", self.namespace, *rename, *argv]

    def popen(
        self, argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on this host in its own session (so its whole process group can be stopped)."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.command(argv),
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def free_port(self) -> int:
        """A TCP port free on this host's address (asked inside the host's namespace)."""
        probe = "import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])"
        result = subprocess.run(
            self.command([sys.executable, "-c", probe, self.address]),
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return int(result.stdout.strip())


@dataclass
class PrivateNetwork:
    """A bridge in this namespace (the api host's address) and one namespace per worker host."""

    bridge: str
    api: Host
    workers: list[Host] = field(default_factory=list)

    def close(self) -> None:
        """Stop whatever still runs in the worker namespaces, delete their veth pairs and them, then the bridge."""
        for host in self.workers:
            if host.link:
                with suppress(NetworkError):  # at once: a deleted namespace frees its links only eventually
                    _ip("link", "delete", host.link)
            if host.namespace:
                _remove_namespace(host.namespace)
        with suppress(NetworkError):
            _ip("link", "delete", self.bridge)


def _remove_namespace(namespace: str) -> None:
    with suppress(NetworkError):
        # Only processes of this test network live here: it was made for them.
        for pid in _ip("netns", "pids", namespace).split():
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with suppress(NetworkError):
        _ip("netns", "delete", namespace)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Delete namespaces and links that an earlier, killed test run (its pid is gone) left behind."""
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAMESPACE_RE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            with suppress(NetworkError):
                _ip("netns", "delete", name)
    for link in json.loads(_ip("-j", "link", "show") or "[]"):
        alias = link.get("ifalias", "")
        if alias.startswith(LINK_ALIAS) and not _pid_alive(int(alias.removeprefix(LINK_ALIAS))):
            with suppress(NetworkError):
                _ip("link", "delete", link["ifname"])


def _free_subnet() -> str:
    """`10.77.N` with N not used by any address or route of this machine."""
    used = _ip("-4", "-o", "addr", "show") + _ip("-4", "route", "show", "table", "all")
    candidates = [n for n in range(1, 255) if f"{SUBNET_PREFIX}.{n}." not in used]
    if not candidates:
        raise NetworkError(f"every {SUBNET_PREFIX}.N.0/24 subnet is in use")
    return f"{SUBNET_PREFIX}.{secrets.choice(candidates)}"


def _make_bridge(name: str, address: str) -> None:
    _ip("link", "add", name, "type", "bridge")
    _ip("link", "set", name, "alias", f"{LINK_ALIAS}{os.getpid()}")
    _ip("addr", "add", f"{address}/24", "dev", name)
    _ip("link", "set", name, "up")


def _add_host(network: PrivateNetwork, tag: str, label: str, address: str) -> Host:
    index = len(network.workers)
    namespace = f"{NAMESPACE_PREFIX}{os.getpid()}-{tag}-{label}"
    outside, inside = f"cwt{tag}{index}o", f"cwt{tag}{index}i"  # at most 15 characters, as Linux requires
    _ip("netns", "add", namespace)
    host = Host(label=label, address=address, namespace=namespace, link=outside)
    network.workers.append(host)  # from here on close() removes it
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
    _ip("link", "set", outside, "alias", f"{LINK_ALIAS}{os.getpid()}")
    _ip("link", "set", inside, "netns", namespace)
    _ip("link", "set", outside, "master", network.bridge)
    _ip("link", "set", outside, "up")
    _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
    _ip("-n", namespace, "link", "set", inside, "up")
    _ip("-n", namespace, "link", "set", "lo", "up")
    return host


@contextmanager
def private_network(worker_labels: Sequence[str]) -> Iterator[PrivateNetwork]:
    """The api host (this namespace, `10.77.N.1`) and one namespace per label (`10.77.N.11`, `.12`, ...), all
    on one bridge; everything is removed on exit, also when building it failed half-way."""
    remove_leftovers()
    tag = secrets.token_hex(2)
    subnet = _free_subnet()
    network = PrivateNetwork(bridge=f"cwt{tag}br", api=Host(label="api", address=f"{subnet}.1"))
    try:
        _make_bridge(network.bridge, network.api.address)
        for offset, label in enumerate(worker_labels):
            _add_host(network, tag, label, f"{subnet}.{11 + offset}")
        yield network
    finally:
        network.close()
