"""C-CDA documents delivered to a real HTTP drop on loopback, and into real directories."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.ccda.delivery import DirectoryChannel, HttpDropChannel, OutgoingDocumentFile
from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http import BackendServicesAuth
from adapters.ports import Channel, Delivery, Receipt
from tests.adapters.http_partner import Partner, Scripted, auth_config, json_answer, unused_url
from tests.keys import ClientKey, rsa_key

TIMEOUT = 0.3  # seconds, for every exchange with the loopback partner
NAME = "referral-note-task-17-v2.xml"
CONTENT = b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3"/>\n'
DOCUMENT = OutgoingDocumentFile(NAME, CONTENT)


@pytest.fixture(scope="module")
def key() -> ClientKey:
    return rsa_key()


@pytest.fixture
def partner(key: ClientKey) -> Iterator[Partner]:
    with Partner(key) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One client for the module: building one loads the CA bundle, which takes 0.1 s."""
    with httpx.Client(timeout=TIMEOUT) as opened:
        yield opened


@pytest.fixture
def channel(partner: Partner, client: httpx.Client) -> HttpDropChannel:
    auth = BackendServicesAuth(auth_config(partner), client)
    return HttpDropChannel(partner.url("/drop"), client, auth)


class TestOutgoingDocumentFile:
    @pytest.mark.parametrize(
        "name",
        [
            "",
            ".hidden.xml",
            "..",
            "../referral.xml",
            "a/b.xml",
            "a\\b.xml",
            "referral note.xml",
            'referral"; x=.xml',
            "référence.xml",
            "referral.xml\n",
            "r" * 256,
        ],
    )
    def test_an_unsafe_name_is_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="unsafe document file name"):
            OutgoingDocumentFile(name, CONTENT)

    def test_the_content_stays_out_of_reprs(self) -> None:
        assert "ClinicalDocument" not in repr(DOCUMENT)


class TestHttpDrop:
    def test_it_is_a_channel_for_documents(self, channel: HttpDropChannel) -> None:
        typed: Channel[OutgoingDocumentFile] = channel
        assert typed is channel

    def test_stored_with_its_location(self, partner: Partner, channel: HttpDropChannel) -> None:
        partner.answers.append(Scripted(201, headers={"Location": "/documents/88"}))

        assert channel.deliver(DOCUMENT) == Receipt(Delivery.ACKNOWLEDGED, "/documents/88")
        [request] = partner.received
        assert request.body == CONTENT
        assert request.headers["content-type"] == "application/xml"
        assert request.headers["content-disposition"] == f'attachment; filename="{NAME}"'
        assert request.headers["idempotency-key"] == f'"{NAME}"'
        assert request.headers["authorization"].startswith("Bearer ")

    @pytest.mark.parametrize(
        ("status", "state"), [(200, Delivery.ACKNOWLEDGED), (202, Delivery.SENT)]
    )
    def test_without_a_location(
        self, status: int, state: Delivery, partner: Partner, channel: HttpDropChannel
    ) -> None:
        partner.answers.append(Scripted(status, b"thanks"))

        assert channel.deliver(DOCUMENT) == Receipt(state, "")

    def test_a_401_gets_a_new_token_and_one_resend(
        self, partner: Partner, channel: HttpDropChannel
    ) -> None:
        partner.answers.extend([Scripted(201), Scripted(201)])
        channel.deliver(DOCUMENT)
        partner.revoke_tokens()

        assert channel.deliver(DOCUMENT).state is Delivery.ACKNOWLEDGED
        assert partner.tokens_issued == 2
        assert [request.body for request in partner.received] == [CONTENT] * 3

    def test_a_busy_partner(self, partner: Partner, channel: HttpDropChannel) -> None:
        partner.answers.append(Scripted(503, headers={"Retry-After": "60"}))

        with pytest.raises(PartnerUnavailable) as raised:
            channel.deliver(DOCUMENT)
        assert (raised.value.reason, raised.value.retry_after) == ("HTTP 503", 60.0)

    def test_the_outcome_says_why(self, partner: Partner, channel: HttpDropChannel) -> None:
        issue = {"severity": "error", "code": "invalid", "diagnostics": "not a Referral Note"}
        partner.answers.append(
            json_answer(422, {"resourceType": "OperationOutcome", "issue": [issue]})
        )

        with pytest.raises(PartnerRejected) as raised:
            channel.deliver(DOCUMENT)
        assert (raised.value.reason, raised.value.detail) == ("HTTP 422", "not a Referral Note")

    def test_an_echo_of_the_document_is_not_repeated(
        self, partner: Partner, channel: HttpDropChannel
    ) -> None:
        partner.answers.append(Scripted(400, b"cannot parse: " + CONTENT))

        with pytest.raises(PartnerRejected) as raised:
            channel.deliver(DOCUMENT)
        assert "ClinicalDocument" not in str(raised.value)

    def test_a_redirect_is_refused(self, partner: Partner, channel: HttpDropChannel) -> None:
        partner.answers.append(Scripted(302, headers={"Location": "http://example.org/in"}))

        with pytest.raises(PartnerRejected, match="redirect refused"):
            channel.deliver(DOCUMENT)

    def test_nothing_listening(self, client: httpx.Client) -> None:
        with pytest.raises(PartnerUnavailable, match="could not connect"):
            HttpDropChannel(unused_url("/drop"), client, None).deliver(DOCUMENT)


class TestDirectory:
    def test_it_is_a_channel_for_documents(self, tmp_path: Path) -> None:
        typed: Channel[OutgoingDocumentFile] = DirectoryChannel(tmp_path)
        assert isinstance(typed, DirectoryChannel)

    def test_the_document_is_dropped_whole(self, tmp_path: Path) -> None:
        receipt = DirectoryChannel(tmp_path).deliver(DOCUMENT)

        assert receipt == Receipt(Delivery.SENT, NAME)
        assert (tmp_path / NAME).read_bytes() == CONTENT
        assert os.listdir(tmp_path) == [NAME]  # no temporary file left behind

    def test_the_group_may_read_it_whatever_the_umask(self, tmp_path: Path) -> None:
        previous = os.umask(0o077)
        try:
            DirectoryChannel(tmp_path).deliver(DOCUMENT)
        finally:
            os.umask(previous)

        assert stat.S_IMODE((tmp_path / NAME).stat().st_mode) == 0o640

    def test_a_resend_replaces_the_file(self, tmp_path: Path) -> None:
        channel = DirectoryChannel(tmp_path)
        channel.deliver(OutgoingDocumentFile(NAME, b"<old/>"))
        channel.deliver(DOCUMENT)

        assert (tmp_path / NAME).read_bytes() == CONTENT
        assert os.listdir(tmp_path) == [NAME]

    def test_a_failed_write_leaves_the_previous_file_and_no_temporary(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = DirectoryChannel(tmp_path)
        channel.deliver(OutgoingDocumentFile(NAME, b"<old/>"))

        def disk_full(descriptor: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", disk_full)
        with pytest.raises(PartnerUnavailable, match="No space left on device"):
            channel.deliver(DOCUMENT)

        assert (tmp_path / NAME).read_bytes() == b"<old/>"
        assert os.listdir(tmp_path) == [NAME]

    def test_a_missing_directory_is_unavailable_and_not_created(self, tmp_path: Path) -> None:
        share = tmp_path / "unmounted"

        with pytest.raises(PartnerUnavailable, match="drop directory"):
            DirectoryChannel(share).deliver(DOCUMENT)
        assert not share.exists()

    def test_a_file_in_place_of_the_directory(self, tmp_path: Path) -> None:
        share = tmp_path / "share"
        share.write_bytes(b"")

        with pytest.raises(PartnerUnavailable, match="drop directory"):
            DirectoryChannel(share).deliver(DOCUMENT)

    @pytest.mark.skipif(
        os.geteuid() == 0,
        reason="root writes into a directory whatever its mode (CAP_DAC_OVERRIDE)",
    )
    def test_an_unwritable_directory(self, tmp_path: Path) -> None:
        share = tmp_path / "share"
        share.mkdir(mode=0o500)
        try:
            with pytest.raises(PartnerUnavailable, match="Permission denied"):
                DirectoryChannel(share).deliver(DOCUMENT)
        finally:
            share.chmod(0o700)
        assert os.listdir(share) == []
