"""`interop mllp` as its own process: a real TCP peer sends a referral, reads the ACK, and the
referral is there through the FHIR API of another process on the same database."""

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPOSITORY, corpus
from tests.e2e.conftest import LiveServer, free_port

pytestmark = pytest.mark.e2e

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def exchange(port: int, payload: bytes) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with connection:
        connection.sendall(VT + payload + FS + CR)
        received = b""
        while not received.endswith(FS + CR):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received.strip(VT).removesuffix(FS + CR)


def test_referral_over_mllp(live_server: LiveServer, database_url: str) -> None:
    program = {"resourceType": "Organization", "name": "RADIANT HEALTH HOSPITAL"}  # its PRD RT
    created = httpx.post(
        f"{live_server.base}/Organization", json=program, headers=live_server.headers
    )
    assert created.status_code == 201, created.text
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interop",
            "mllp",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ack = exchange(port, (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes())
        assert b"MSA|AA|" in ack
        garbage = exchange(port, b"this is not an HL7 message")
        assert b"MSA|AR|" in garbage
    finally:
        listener.terminate()
        listener.wait(timeout=10)
    found = httpx.get(f"{live_server.base}/ServiceRequest", headers=live_server.headers).json()
    assert found["total"] == 1
