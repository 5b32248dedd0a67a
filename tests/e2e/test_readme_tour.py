"""The README's 5-minute tour and its partner quickstart, run verbatim against a fresh server,
so that what a newcomer types first cannot drift from what works."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY
from tests.e2e.conftest import free_port, wait_until_serving

pytestmark = pytest.mark.e2e

README = REPOSITORY / "README.md"
SECTIONS = ("## A 5-minute tour", "## A partner in three commands")


def shell_blocks(readme: str, heading: str) -> list[str]:
    """The ```sh blocks of one section, in order."""
    assert heading in readme, f"the README lost its section {heading!r}"
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def _environment(**extra: str) -> dict[str, str]:
    """The operator's shell: nothing set that the README does not set itself."""
    unset = {"DATABASE_URL", "PUBLIC_BASE_URL", "ENVIRONMENT", "TOKEN_SIGNING_KEY"}
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **extra}


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """`interop serve --port N` in an empty folder beside the repository's .venv, as `make run
    PORT=N` starts it: its own SQLite database under ./var/, PUBLIC_BASE_URL unset."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / ".venv").symlink_to(REPOSITORY / ".venv")
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "interop", "serve", "--port", str(port)],
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_environment(),
        )
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        yield folder, root
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_readme_tour_runs_verbatim(fresh_server: tuple[Path, str]) -> None:
    folder, root = fresh_server
    readme = README.read_text()
    blocks = [block for heading in SECTIONS for block in shell_blocks(readme, heading)]
    assert len(blocks) >= 5
    script = "\n".join(["set -euo pipefail", *blocks, 'echo "partner token: ${#TOKEN} characters"'])

    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_environment(PUBLIC_BASE_URL=root),
    )

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = ran.stdout
    assert re.search(r'"resourceType":\s*"Bundle"', out)
    assert re.search(r'"total":\s*1\b', out), "Riverside's token must see the care plan"
    assert out.count('"resourceType":"Goal"') + out.count('"resourceType": "Goal"') == 8
    assert "<ClinicalDocument" in out
    assert "42CFRPart2" in out
    assert re.search(r"intact: [1-9]\d* rows", out)
    assert re.search(r"partner token: [1-9]\d* characters", out)
    assert "Traceback" not in ran.stderr
