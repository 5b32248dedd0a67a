"""`interop export` as an operator runs it, against `interop serve` in its own process (real
HTTP on loopback) and locally on the database."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.builders import patient
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def interop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_export_from_a_server_and_locally(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    for family in ("Remote", "Local"):
        created = httpx.post(
            f"{live_server.base}/Patient",
            json=patient(family=family, mrn=f"MRN-{family}"),
            headers=live_server.headers,
        )
        assert created.status_code == 201, created.text
    token = live_server.authorization.removeprefix("Bearer ")
    remote = interop(
        "export",
        "--server",
        live_server.base.removesuffix("/fhir"),
        "--token",
        token,
        "--type",
        "Patient",
        "--output",
        str(tmp_path / "remote"),
    )
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["files"] == {"Patient": 2}
    assert "complete" in remote.stderr  # the progress bar's last state
    rows = (tmp_path / "remote" / "Patient.ndjson").read_text().splitlines()
    assert {json.loads(row)["name"][0]["family"] for row in rows} == {"Remote", "Local"}
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert manifest["requiresAccessToken"] is True

    local = interop(
        "export",
        "--local",
        "--database-url",
        database_url,
        "--level",
        "patient",
        "--output",
        str(tmp_path / "local"),
    )
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["files"] == {"Patient": 2}

    refused = interop("export", "--output", str(tmp_path / "none"))
    assert refused.returncode == 2
    assert "--server" in refused.stderr
