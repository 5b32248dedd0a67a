"""A real server process on loopback, over the test's database."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPOSITORY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode}:\n{log.read_text()[-2000:]}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within 30 s:\n{log.read_text()[-2000:]}")


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The base URL of `interop serve` running as its own process."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interop",
                "serve",
                "--port",
                str(port),
                "--database-url",
                database_url,
            ],
            cwd=REPOSITORY,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_until_serving(f"{base}/metadata", process, log)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
