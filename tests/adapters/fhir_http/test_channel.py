"""Transaction Bundles delivered to a real FHIR partner on loopback, and what each answer means."""

import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import httpx
import orjson
import pytest

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http import MAX_ANSWER_BYTES, BackendServicesAuth, FhirPartnerChannel
from adapters.ports import Channel, Delivery, Receipt
from tests.adapters.http_partner import Partner, Scripted, auth_config, json_answer, unused_url
from tests.keys import ClientKey, rsa_key

TIMEOUT = 0.3  # seconds, for every exchange; a test that waits on a partner ends by itself
WAIT = 5.0
PATIENT_NAME = "Adaline Testperson"  # what an echo of our payload would give away


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
def channel(partner: Partner, client: httpx.Client) -> FhirPartnerChannel:
    auth = BackendServicesAuth(auth_config(partner), client)
    return FhirPartnerChannel(partner.url("/fhir"), client, auth)


def transaction(count: int = 2) -> dict[str, Any]:
    """Conditional updates on identifiers, as the dispatcher builds them."""
    entries = [
        {
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:example:mrn", "value": f"mrn-{n}"}],
                "name": [{"text": PATIENT_NAME}],
            },
            "request": {"method": "PUT", "url": f"Patient?identifier=urn:example:mrn|mrn-{n}"},
        }
        for n in range(count)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def transaction_response(*statuses: str) -> dict[str, Any]:
    entries = [
        {"response": {"status": status, "location": f"Patient/{n}/_history/1"}}
        for n, status in enumerate(statuses)
    ]
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def stored(count: int = 2) -> Scripted:
    return json_answer(200, transaction_response(*["201 Created"] * count))


def test_it_is_a_channel_for_bundles(channel: FhirPartnerChannel) -> None:
    typed: Channel[dict[str, Any]] = channel
    assert typed is channel


class TestAcknowledged:
    def test_stored_with_the_first_location(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(stored())

        receipt = channel.deliver(transaction())

        assert receipt == Receipt(Delivery.ACKNOWLEDGED, "Patient/0/_history/1")
        [request] = partner.received
        assert request.path == "/fhir"
        assert request.headers["content-type"] == "application/fhir+json"
        assert request.headers["accept"] == "application/fhir+json"
        assert request.headers["authorization"].startswith("Bearer ")
        assert orjson.loads(request.body) == transaction()

    def test_without_a_location(self, partner: Partner, channel: FhirPartnerChannel) -> None:
        answer = transaction_response("200 OK")
        del answer["entry"][0]["response"]["location"]
        partner.answers.append(json_answer(200, answer))

        assert channel.deliver(transaction(1)) == Receipt(Delivery.ACKNOWLEDGED, "")

    def test_a_partner_without_authorization(self, key: ClientKey, client: httpx.Client) -> None:
        with Partner(key, protected=False) as partner:
            partner.answers.append(stored())
            receipt = FhirPartnerChannel(partner.url("/fhir"), client, None).deliver(transaction())

            assert receipt.state is Delivery.ACKNOWLEDGED
            assert "authorization" not in partner.received[0].headers
            assert partner.tokens_issued == 0

    def test_accepted_for_later_is_sent(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(Scripted(202, headers={"Content-Location": "/fhir/status/7"}))

        assert channel.deliver(transaction()) == Receipt(Delivery.SENT, "/fhir/status/7")


class TestTokens:
    def test_a_401_gets_a_new_token_and_one_resend(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.extend([stored(), stored()])
        channel.deliver(transaction())
        partner.revoke_tokens()

        assert channel.deliver(transaction()).state is Delivery.ACKNOWLEDGED
        assert partner.tokens_issued == 2
        assert len(partner.received) == 3  # the first delivery, the 401, the resend

    def test_a_second_401_is_a_refusal(self, partner: Partner, channel: FhirPartnerChannel) -> None:
        partner.answers.extend([Scripted(401), Scripted(401), stored()])

        with pytest.raises(PartnerRejected, match="HTTP 401"):
            channel.deliver(transaction())
        assert len(partner.received) == 2

    def test_a_refused_token_stops_the_delivery(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        auth = BackendServicesAuth(auth_config(partner, rsa_key("unregistered")), client)

        with pytest.raises(PartnerRejected) as raised:
            FhirPartnerChannel(partner.url("/fhir"), client, auth).deliver(transaction())
        assert (raised.value.reason, raised.value.detail) == ("token refused", "invalid_client")
        assert partner.received == []


class TestUnavailable:
    @pytest.mark.parametrize(
        ("status", "retry_after", "expected"),
        [
            (500, None, None),
            (503, "120", 120.0),
            (429, 90.0, pytest.approx(90, abs=2)),  # an HTTP-date 90 s from now
            (408, -90.0, 0.0),
            (502, "soon", None),
        ],
    )
    def test_a_busy_partner_says_when_to_come_back(
        self,
        status: int,
        retry_after: str | float | None,
        expected: object,
        partner: Partner,
        channel: FhirPartnerChannel,
    ) -> None:
        if isinstance(retry_after, float):
            retry_after = formatdate(time.time() + retry_after, usegmt=True)
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        partner.answers.append(Scripted(status, b"busy", headers))

        with pytest.raises(PartnerUnavailable) as raised:
            channel.deliver(transaction())
        assert raised.value.reason == f"HTTP {status}"
        assert raised.value.retry_after == expected

    @pytest.mark.parametrize(
        "scripted",
        [
            Scripted(200, b"<html>Thank you</html>"),
            Scripted(204),
            json_answer(200, {"resourceType": "Bundle", "type": "searchset", "entry": []}),
            json_answer(200, {"resourceType": "OperationOutcome", "issue": []}),
            json_answer(200, transaction_response("201 Created")),
            json_answer(200, transaction_response("201 Created", "409 Conflict")),
            json_answer(200, [transaction_response("201", "201")]),
        ],
        ids=[
            "not-json",
            "empty",
            "searchset",
            "outcome",
            "entries-missing",
            "entry-failed",
            "not-an-object",
        ],
    )
    def test_an_unreadable_answer_may_be_sent_again(
        self, scripted: Scripted, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(scripted)

        with pytest.raises(PartnerUnavailable, match=r"^unreadable answer$"):
            channel.deliver(transaction())

    def test_a_slow_partner_times_out(self, partner: Partner, channel: FhirPartnerChannel) -> None:
        partner.answers.append(Scripted(200, orjson.dumps(transaction_response()), delay=2.0))
        started = time.monotonic()

        with pytest.raises(PartnerUnavailable, match="timed out"):
            channel.deliver(transaction())
        assert time.monotonic() - started < 1.5

    def test_nothing_listening(self, client: httpx.Client) -> None:
        channel = FhirPartnerChannel(unused_url("/fhir"), client, None)

        with pytest.raises(PartnerUnavailable, match="could not connect"):
            channel.deliver(transaction())

    def test_a_huge_declared_body_is_not_read(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        # A byte every 50 ms: reading even a fraction of it would outlast the test.
        declared = {"Content-Length": str(100 * MAX_ANSWER_BYTES)}
        partner.answers.append(Scripted(200, headers=declared, trickle=True))
        started = time.monotonic()

        with pytest.raises(PartnerUnavailable, match="answer too large"):
            channel.deliver(transaction())
        assert time.monotonic() - started < 1.0
        assert partner.hung_up.wait(WAIT)

    def test_an_endless_body_is_read_up_to_the_cap(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(Scripted(200, endless=True))

        with pytest.raises(PartnerUnavailable, match="answer too large"):
            channel.deliver(transaction())
        assert partner.hung_up.wait(WAIT)


class TestRejected:
    def test_the_outcome_says_why(self, partner: Partner, channel: FhirPartnerChannel) -> None:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "required", "diagnostics": "Patient.birthDate"},
                {"severity": "error", "code": "business-rule", "details": {"text": "No\n room"}},
                {"severity": "warning", "code": "informational"},
            ],
        }
        partner.answers.append(json_answer(422, outcome))

        with pytest.raises(PartnerRejected) as raised:
            channel.deliver(transaction())
        assert raised.value.reason == "HTTP 422"
        assert raised.value.detail == "Patient.birthDate; No room"

    def test_a_long_outcome_is_cut_short(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        issue = {"severity": "error", "code": "invalid", "diagnostics": "why " * 1000}
        partner.answers.append(
            json_answer(400, {"resourceType": "OperationOutcome", "issue": [issue]})
        )

        with pytest.raises(PartnerRejected) as raised:
            channel.deliver(transaction())
        assert raised.value.detail is not None
        assert len(raised.value.detail) == 300
        assert raised.value.detail.endswith("…")

    def test_an_answer_that_is_no_outcome_is_not_repeated(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        echo = f"<html>Bad request: {orjson.dumps(transaction()).decode()}</html>".encode()
        partner.answers.append(Scripted(400, echo))

        with pytest.raises(PartnerRejected) as raised:
            channel.deliver(transaction())
        assert raised.value.detail is None
        assert PATIENT_NAME not in str(raised.value)

    def test_a_redirect_is_not_followed(self, partner: Partner) -> None:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as following:
            auth = BackendServicesAuth(auth_config(partner), following)
            channel = FhirPartnerChannel(partner.url("/fhir"), following, auth)
            partner.answers.extend([Scripted(308, headers={"Location": "/elsewhere"}), stored()])

            with pytest.raises(PartnerRejected) as raised:
                channel.deliver(transaction())

        assert (raised.value.reason, raised.value.detail) == ("redirect refused", "/elsewhere")
        assert [request.path for request in partner.received] == ["/fhir"]

    def test_only_transactions_are_delivered(self, channel: FhirPartnerChannel) -> None:
        with pytest.raises(ValueError, match="transaction"):
            channel.deliver({**transaction(), "type": "batch"})


class TestSearch:
    """Reading the partner's server back (REFERRALS.md: polling as the fallback)."""

    def searchset(self, partner: Partner, ids: list[str], following: str | None) -> Scripted:
        links = [{"relation": "next", "url": following}] if following else []
        entries: list[dict[str, Any]] = [
            {"resource": {"resourceType": "Task", "id": i}, "search": {"mode": "match"}}
            for i in ids
        ]
        entries.append(
            {"resource": {"resourceType": "Patient", "id": "p"}, "search": {"mode": "include"}}
        )
        return json_answer(
            200, {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
        )

    def test_pages_are_followed_on_the_partners_server(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(
            self.searchset(partner, ["a", "b"], partner.url("/fhir/Task?page=2"))
        )
        partner.answers.append(self.searchset(partner, ["c"], None))

        found = channel.search("Task", {"_lastUpdated": "ge2026-11-01T00:00:00Z"})

        assert [task["id"] for task in found] == ["a", "b", "c"]
        first, second = partner.received
        assert first.path == "/fhir/Task?_lastUpdated=ge2026-11-01T00%3A00%3A00Z"
        assert second.path == "/fhir/Task?page=2"
        assert second.headers["authorization"].startswith("Bearer ")

    def test_a_paging_link_off_the_partners_server_is_refused_with_our_token_kept(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(self.searchset(partner, ["a"], "http://127.0.0.1:9/steal"))

        with pytest.raises(PartnerRejected, match="paging link leaves"):
            channel.search("Task", {})
        assert len(partner.received) == 1

    def test_an_answer_that_is_not_a_searchset_is_unreadable(
        self, partner: Partner, channel: FhirPartnerChannel
    ) -> None:
        partner.answers.append(json_answer(200, {"resourceType": "Patient"}))

        with pytest.raises(PartnerUnavailable, match="unreadable answer"):
            channel.search("Task", {})
