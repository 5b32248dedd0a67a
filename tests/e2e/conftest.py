"""A real server process on loopback, over the test's database."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from interop.services.partners import NewPartner, PartnerService
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from tests.conftest import REPOSITORY
from tests.keys import ClientKey, assertion, rsa_key, token_form


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


@dataclass(frozen=True)
class LiveServer:
    base: str  # the FHIR base URL
    authorization: str  # "Bearer ..." for a partner granted system/*.cruds
    organization: str  # that partner's Organization reference
    log: Path  # everything the server process wrote

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization, "Content-Type": "application/fhir+json"}


def _register(database_url: str) -> tuple[str, str, ClientKey]:
    engine = make_engine(database_url)
    upgrade(engine)
    key = rsa_key()
    partner = PartnerService(engine).register(
        NewPartner(
            name="E2E Partner",
            identifiers=[("urn:oid:2.16.840.1.113883.3.9999.10", "e2e")],
            scopes="system/*.cruds",
            jwks=key.jwks(),
            first_party=True,
        )
    )
    engine.dispose()
    return partner.client_id, partner.organization, key


def _token(root: str, client_id: str, key: ClientKey) -> str:
    signed = assertion(key, client_id, f"{root}/auth/token")
    response = httpx.post(f"{root}/auth/token", data=token_form(signed, "system/*.cruds"))
    response.raise_for_status()
    return f"Bearer {response.json()['access_token']}"


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`interop serve` running as its own process, and a partner's token for it."""
    client_id, organization, key = _register(database_url)
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
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        yield LiveServer(f"{root}/fhir", _token(root, client_id, key), organization, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


from tests.e2e.sync_world import world  # noqa: E402, F401  (the delivery tests' fixture)
