"""`interop mllp` as its own process: a real TCP peer sends a referral, reads the ACK, and the
referral is there through the FHIR API of another process on the same database."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPOSITORY, corpus
from tests.e2e.conftest import LiveServer, free_port

pytestmark = pytest.mark.e2e

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def connect(port: int) -> socket.socket:
    """A connection to the listener, once the process listens."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def answer(connection: socket.socket) -> bytes:
    """The next frame back, unframed (bytes read one by one: nothing of a next frame is lost)."""
    received = b""
    while not received.endswith(FS + CR):
        chunk = connection.recv(1)
        if not chunk:
            break
        received += chunk
    return received.strip(VT).removesuffix(FS + CR)


def exchange(port: int, payload: bytes) -> bytes:
    with connect(port) as connection:
        connection.sendall(VT + payload + FS + CR)
        return answer(connection)


@pytest.fixture
def listener(database_url: str) -> Iterator[int]:
    """`interop mllp` on a free port, on the live server's database."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "interop", "mllp", "--port", str(port),
         "--database-url", database_url],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def add_the_program(live_server: LiveServer) -> None:
    program = {"resourceType": "Organization", "name": "RADIANT HEALTH HOSPITAL"}  # its PRD RT
    created = httpx.post(
        f"{live_server.base}/Organization", json=program, headers=live_server.headers
    )
    assert created.status_code == 201, created.text


def referrals(live_server: LiveServer) -> int:
    found = httpx.get(f"{live_server.base}/ServiceRequest", headers=live_server.headers).json()
    return int(found["total"])


def test_referral_over_mllp(live_server: LiveServer, listener: int) -> None:
    add_the_program(live_server)
    ack = exchange(listener, (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes())
    assert b"MSA|AA|" in ack
    garbage = exchange(listener, b"this is not an HL7 message")
    assert b"MSA|AR|" in garbage
    assert referrals(live_server) == 1


def test_a_batch_over_mllp_is_answered_with_a_batch_of_acks(
    live_server: LiveServer, listener: int
) -> None:
    """An interface engine's batch in one MLLP block: each message processed, each
    acknowledged, in a batch whose BHS-12 names the one received (HL7 v2.5.1 2.10.3.3)."""
    add_the_program(live_server)
    referral = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes().replace(b"\n", b"\r")
    control = referral.split(b"|")[9]
    resent = referral.replace(b"|" + control + b"|", b"|RESENT-1|", 1)
    batch = (
        b"BHS|^~\\&|CLINIC|NORTH|RECOVERY-INTEROP|HARBOR|20240305143000||||BATCH-42\r"
        + referral.rstrip(b"\r") + b"\r" + resent.rstrip(b"\r") + b"\rBTS|2\r"
    )  # fmt: skip
    answer = exchange(listener, batch).decode().rstrip("\r").split("\r")
    assert answer[0].startswith("BHS|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC|NORTH|")
    assert answer[0].endswith("|BATCH-42")
    acknowledged = [line.split("|")[1:3] for line in answer if line.startswith("MSA")]
    assert acknowledged == [["AA", control.decode()], ["AA", "RESENT-1"]]
    assert answer[-1] == "BTS|2"
    assert referrals(live_server) == 1  # the resend changed nothing


def asking(accept: str, application: str, control_id: str) -> bytes:
    """The corpus referral with MSH-15, MSH-16 and MSH-10 set (its MSH-13..16 are empty)."""
    raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
    raw = raw.replace(b"|MSG00112|", f"|{control_id}|".encode(), 1)
    return raw.replace(b"|2.8|||||", f"|2.8|||{accept}|{application}|".encode(), 1)


def msa_of(ack: bytes) -> bytes:
    return next(line for line in ack.split(CR) if line.startswith(b"MSA|"))


def test_acks_are_not_answered_and_enhanced_mode_is_followed(
    live_server: LiveServer, listener: int
) -> None:
    """On one connection, as an interface engine holds it: an ACK that comes in gets no
    answer (an AR to it could start an endless exchange of ACKs); MSH-15 AL and MSH-16 AL get
    the commit accept and then the application accept, each in a frame of its own; NE and NE
    get nothing, though the message is processed; so the next frame answers the next message."""
    add_the_program(live_server)
    ack = (
        b"MSH|^~\\&|RHH|RHHFacility|GHH|GHHSFacility|20220125162100||ACK^I12^ACK|RHH-1|P|2.8\r"
        b"MSA|AA|SOMETHING-WE-SENT\r"
    )
    with connect(listener) as connection:
        connection.sendall(VT + ack + FS + CR)
        connection.sendall(VT + asking("AL", "AL", "MSG-1") + FS + CR)
        assert msa_of(answer(connection)) == b"MSA|CA|MSG-1"
        assert referrals(live_server) == 1  # committed before the commit accept went out
        assert msa_of(answer(connection)) == b"MSA|AA|MSG-1"
        connection.sendall(VT + asking("NE", "NE", "MSG-2") + FS + CR)
        connection.sendall(VT + asking("", "", "MSG-3") + FS + CR)
        assert msa_of(answer(connection)) == b"MSA|AA|MSG-3"
    assert referrals(live_server) == 1  # the same referral each time (RF1-6), updated
