"""`interop serve --workers N` (issue 13, point 5): several API processes on one database,
whose disclosure-log entries still form one exact chain."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import patient
from tests.conftest import REPOSITORY
from tests.e2e.conftest import _register, _token, free_port, wait_until_serving

pytestmark = pytest.mark.e2e

READS = 60


def test_two_workers_serve_and_their_log_entries_form_one_chain(
    database_url: str, tmp_path: Path
) -> None:
    client_id, _organization, key = _register(database_url)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "interop", "serve", "--port", str(port), "--workers", "2",
               "--database-url", database_url]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPOSITORY, stdout=output, stderr=output)
    try:
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        headers = {
            "Authorization": _token(root, client_id, key),
            "Content-Type": "application/fhir+json",
        }
        created = httpx.post(f"{root}/fhir/Patient", json=patient(), headers=headers)
        assert created.status_code == 201, created.text
        url = f"{root}/fhir/Patient/{created.json()['id']}"
        with httpx.Client(headers=headers) as http, ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _n: http.get(url).status_code, range(READS)))
        assert statuses == [200] * READS
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "with 2 worker processes" in log.read_text()
    verified = subprocess.run(
        [sys.executable, "-m", "interop", "audit", "verify", "--database-url", database_url],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    rows = int(verified.stdout.split("intact: ")[1].split(" rows")[0])
    assert rows >= READS
