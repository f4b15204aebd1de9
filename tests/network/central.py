"""The api host of the multi-host test: its own MariaDB (reachable on the test subnet only), the Prefect server,
the operator's config.yaml, and the environment every host is given to find them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pymysql
import yaml

from deployments.prefect_server import server_command
from tests.fixtures.prefect_server import PROJECT_ROOT, wait_until
from tests.network.netns import Host
from tests.network.processes import START_DEADLINE_S, Process, Processes, clean_env

GROUP = "default"
DB_USER = "comfyws"
ADMIN_PASSWORD = "multihost-admin-password-1"


def start_prefect_server(processes: Processes, host: Host, home: Path) -> tuple[Process, str]:
    """`prefect server start` bound to the api host's address; returns the process and its API URL."""
    port = host.free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    argv = server_command(host=host.address, port=port)
    return processes.start(host, "prefect-server", argv, env), f"http://{host.address}:{port}/api"


def mariadb_tools() -> tuple[str, str] | None:
    """Paths of `mariadb-install-db` and `mariadbd` (Debian keeps the server in /usr/sbin), or None."""
    install = shutil.which("mariadb-install-db") or shutil.which(
        "mariadb-install-db", path="/usr/bin:/usr/sbin"
    )
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    return (install, server) if install and server else None


def start_mariadb(processes: Processes, host: Host, *, password: str) -> str:
    """A MariaDB of its own, listening on the api host's address only, with a user that the hosts of the
    test subnet may log in as; returns its server URL (no database)."""
    datadir = Path(tempfile.mkdtemp(prefix="cwt-mariadb-"))  # short: the socket path must fit 108 bytes
    processes.scratch.append(datadir)
    tools = mariadb_tools()
    if tools is None:
        raise RuntimeError("mariadbd and mariadb-install-db are needed")
    install, server = tools
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={datadir / 'data'}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port, socket_path = host.free_port(), datadir / "mysqld.sock"
    argv = [
        server,
        "--no-defaults",
        f"--datadir={datadir / 'data'}",
        f"--socket={socket_path}",
        f"--port={port}",
        f"--bind-address={host.address}",
        "--user=root",
        "--skip-name-resolve",
        f"--pid-file={datadir / 'mysqld.pid'}",
        "--innodb-buffer-pool-size=64M",
        "--skip-log-bin",
    ]
    process = processes.start(host, "mariadb", argv, clean_env())
    wait_until(
        lambda: _grant(socket_path, process, host, password),
        timeout=START_DEADLINE_S,
        interval=0.1,
        what="MariaDB to accept connections",
    )
    return f"mysql+pymysql://{DB_USER}:{password}@{host.address}:{port}"


def _grant(socket_path: Path, process: Process, host: Host, password: str) -> bool:
    """As root over the local socket: the service's user, allowed from the whole test subnet (as in production:
    `'comfyws'@'10.0.0.%'`), owning the comfyws_* databases."""
    if not process.alive():
        raise RuntimeError(f"mariadbd exited:\n{process.output()}")
    try:
        connection = pymysql.connect(unix_socket=str(socket_path), user="root", connect_timeout=2)
    except pymysql.err.OperationalError:
        return False
    subnet = host.address.rsplit(".", 1)[0] + ".%"
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (DB_USER, subnet, password))
        cursor.execute("GRANT ALL PRIVILEGES ON `comfyws\\_%%`.* TO %s@%s", (DB_USER, subnet))
    return True


def database_env(server_url: str) -> dict[str, str]:
    """COMFYWS_DB_*_URL of the three databases on that server."""
    return {
        f"COMFYWS_DB_{name.upper()}_URL": f"{server_url}/comfyws_{name}?charset=utf8mb4"
        for name in ("client", "admin", "shared")
    }


def write_config(path: Path) -> None:
    """The operator's config.yaml: no static nodes (they register themselves), a quick health monitor, and
    round robin, whose cursor lives in the shared database: every worker host's claims alternate the nodes."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["nodes"] = {
        "static_nodes": [],
        "groups": {GROUP: {"strategy": "round_robin", "workers": 1, "concurrency": 3}},
        "health": {"interval_seconds": 0.5, "timeout_seconds": 2, "unhealthy_after": 2, "healthy_after": 1},
        "max_attempts": 3,
    }
    path.write_text(yaml.safe_dump(config))


@dataclass(frozen=True)
class Central:
    """What every host is told about the api host, and the settings all hosts share."""

    prefect_api_url: str
    api_url: str
    database_urls: dict[str, str]
    config_path: Path
    shared_dir: Path
    internal_token: str

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """The environment of a service process whose local state lives in `data_dir`."""
        return clean_env(
            PREFECT_API_URL=self.prefect_api_url,
            PREFECT_HOME=str(data_dir / "prefect"),
            PREFECT_LOGGING_LEVEL="WARNING",
            COMFYWS_ENVIRONMENT="test",
            COMFYWS_API_URL=self.api_url,
            COMFYWS_INTERNAL_TOKEN=self.internal_token,
            COMFYWS_CONFIG_PATH=str(self.config_path),
            COMFYWS_WORKFLOWS_DIR=str(PROJECT_ROOT / "workflows"),
            COMFYWS_DATA_DIR=str(data_dir),
            COMFYWS_OUTPUTS_DIR=str(self.shared_dir / "outputs"),
            COMFYWS_UPLOADS_DIR=str(self.shared_dir / "uploads"),
            COMFYWS_FLOW_IDLE_TIMEOUT_S="5",
            COMFYWS_FLOW_SLOT_POLL_S="0.05",
            **self.database_urls,
            **extra,
        )


def api_env(central: Central, data_dir: Path, *, node_token: str) -> dict[str, str]:
    return central.env(
        data_dir,
        COMFYWS_API_ADMIN_PASSWORD=ADMIN_PASSWORD,
        COMFYWS_API_JWT_SECRET="multihost-test-jwt-secret-0123456789abcdef",
        COMFYWS_API_NODE_TOKEN=node_token,
    )
