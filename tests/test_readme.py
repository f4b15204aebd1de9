"""The README's curl session, executed verbatim against a live stack: what a new user pastes must work."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from comfyws.settings import PROJECT_ROOT
from tests.fixtures.stack import Stack

SESSION = re.compile(r"^## A curl session\n\n```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def curl_session() -> str:
    match = SESSION.search((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no '## A curl session' bash block"
    return match.group(1)


def test_the_curl_session_block_reads_its_base_url_from_the_environment() -> None:
    assert curl_session().startswith("API=${API:-http://localhost:8000}\n")


def test_the_readme_curl_session_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    # Only the base URL differs from a user's shell: the block takes API from the environment.
    env = {**os.environ, "API": stack.api_url}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", curl_session()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert "completed" in lines and lines[-1] == "result.png: a PNG image", done.stdout
    assert (tmp_path / "result.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
