"""SMART Backend Services tokens, fetched from a real token endpoint on loopback that verifies
our client assertions with the registered public key."""

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http import BackendServicesAuth
from tests.adapters.http_partner import (
    CLIENT_ID,
    DESCRIPTION,
    SCOPE,
    Partner,
    Scripted,
    auth_config,
    json_answer,
    unused_url,
)
from tests.keys import ClientKey, ec_key, rsa_key

TIMEOUT = 0.3  # seconds; every exchange with the loopback partner is bounded


@pytest.fixture(scope="module")
def rsa() -> ClientKey:
    return rsa_key()


@pytest.fixture
def partner(rsa: ClientKey) -> Iterator[Partner]:
    with Partner(rsa) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One client for the module: building one loads the CA bundle, which takes 0.1 s."""
    with httpx.Client(timeout=TIMEOUT) as opened:
        yield opened


class Clock:
    """The Unix time, moved on by the test: the assertions stay valid for the real partner."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class TestAssertion:
    @pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS384", "ES384"])
    def test_the_partner_verifies_it_and_issues_a_token(
        self, make_key: Callable[[], ClientKey], client: httpx.Client
    ) -> None:
        key = make_key()
        with Partner(key) as partner:
            token = BackendServicesAuth(auth_config(partner), client).access_token()

            assert token
            [(header, claims)] = partner.assertions
            assert header == {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
            assert claims["iss"] == claims["sub"] == CLIENT_ID
            assert claims["aud"] == partner.token_url
            assert 0 < claims["exp"] - time.time() <= 300
            [form] = partner.token_forms
            assert form["grant_type"] == "client_credentials"
            assert form["scope"] == SCOPE

    def test_every_assertion_has_its_own_jti(self, partner: Partner, client: httpx.Client) -> None:
        auth = BackendServicesAuth(auth_config(partner), client)
        auth.access_token()
        auth.invalidate()
        auth.access_token()

        first, second = (claims["jti"] for _, claims in partner.assertions)
        assert first != second

    def test_purposes_of_use_travel_as_the_udap_b2b_extension(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        """A Part 2 server denies a request without a purpose (PART2.md S4)."""
        config = replace(auth_config(partner), purposes=("TREAT",))
        BackendServicesAuth(config, client).access_token()
        BackendServicesAuth(auth_config(partner), client).access_token()

        with_purpose, without = (claims for _, claims in partner.assertions)
        assert with_purpose["extensions"] == {
            "hl7-b2b": {
                "version": "1",
                "purpose_of_use": ["urn:oid:2.16.840.1.113883.5.8#TREAT"],
            }
        }
        assert "extensions" not in without


class TestCache:
    def test_a_token_is_reused_while_fresh(self, partner: Partner, client: httpx.Client) -> None:
        auth = BackendServicesAuth(auth_config(partner), client)

        assert auth.access_token() == auth.access_token()
        assert partner.tokens_issued == 1

    def test_a_token_is_renewed_shortly_before_it_expires(
        self, rsa: ClientKey, client: httpx.Client
    ) -> None:
        clock = Clock()
        with Partner(rsa, expires_in=20) as partner:
            auth = BackendServicesAuth(auth_config(partner), client, clock=clock)
            first = auth.access_token()
            clock.offset = 17.0
            assert auth.access_token() == first
            clock.offset = 19.0
            assert auth.access_token() != first
            assert partner.tokens_issued == 2

    def test_invalidate_forgets_the_token(self, partner: Partner, client: httpx.Client) -> None:
        auth = BackendServicesAuth(auth_config(partner), client)
        first = auth.access_token()
        auth.invalidate()

        assert auth.access_token() != first
        assert partner.tokens_issued == 2

    def test_a_token_without_expires_in_serves_once(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        for value in ("first", "second"):
            partner.token_answers.append(
                json_answer(200, {"access_token": value, "token_type": "Bearer"})
            )
        auth = BackendServicesAuth(auth_config(partner), client)

        assert [auth.access_token(), auth.access_token()] == ["first", "second"]


class TestRefusals:
    def test_an_unknown_key_is_refused_with_the_oauth_error_code_only(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        auth = BackendServicesAuth(auth_config(partner, rsa_key("not-registered")), client)

        with pytest.raises(PartnerRejected) as raised:
            auth.access_token()
        assert (raised.value.reason, raised.value.detail) == ("token refused", "invalid_client")
        assert DESCRIPTION not in str(raised.value)

    def test_a_scope_refused_is_named(self, partner: Partner, client: httpx.Client) -> None:
        partner.token_answers.append(json_answer(400, {"error": "invalid_scope"}))

        with pytest.raises(PartnerRejected, match="invalid_scope"):
            BackendServicesAuth(auth_config(partner), client).access_token()

    def test_an_error_that_is_no_oauth_code_is_not_repeated(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        partner.token_answers.append(json_answer(401, {"error": "<b>patient Ada</b> unknown"}))

        with pytest.raises(PartnerRejected) as raised:
            BackendServicesAuth(auth_config(partner), client).access_token()
        assert (raised.value.reason, raised.value.detail) == ("token refused", "HTTP 401")

    def test_a_redirect_is_refused(self, partner: Partner, client: httpx.Client) -> None:
        partner.token_answers.append(Scripted(307, headers={"Location": partner.url("/other")}))

        with pytest.raises(PartnerRejected, match="redirect refused"):
            BackendServicesAuth(auth_config(partner), client).access_token()


class TestUnavailable:
    def test_a_busy_token_endpoint_says_when_to_come_back(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        partner.token_answers.append(Scripted(503, headers={"Retry-After": "30"}))

        with pytest.raises(PartnerUnavailable) as raised:
            BackendServicesAuth(auth_config(partner), client).access_token()
        assert (raised.value.reason, raised.value.retry_after) == ("token endpoint: HTTP 503", 30)

    def test_nothing_listening(self, partner: Partner, client: httpx.Client) -> None:
        moved = replace(auth_config(partner), token_url=unused_url("/token"))

        with pytest.raises(PartnerUnavailable, match="token endpoint: could not connect"):
            BackendServicesAuth(moved, client).access_token()

    @pytest.mark.parametrize(
        "scripted",
        [
            Scripted(200, b"<html>welcome</html>"),
            json_answer(200, {"token_type": "bearer", "expires_in": 300}),
            json_answer(200, {"access_token": "a b\r\nX-Injected: 1", "token_type": "bearer"}),
            json_answer(200, {"access_token": "abc", "token_type": "DPoP"}),
            Scripted(200, b"{" * 70_000),
        ],
        ids=["not-json", "no-token", "not-a-bearer-token", "not-bearer", "too-large"],
    )
    def test_an_unreadable_answer(
        self, scripted: Scripted, partner: Partner, client: httpx.Client
    ) -> None:
        partner.token_answers.append(scripted)

        with pytest.raises(PartnerUnavailable, match="token endpoint: unreadable answer"):
            BackendServicesAuth(auth_config(partner), client).access_token()


class TestConfiguration:
    def test_the_key_must_sign_with_the_algorithm(
        self, partner: Partner, client: httpx.Client
    ) -> None:
        p256 = ClientKey("p256", "ES384", ec.generate_private_key(ec.SECP256R1()))
        wrong = [
            replace(auth_config(partner), alg="ES384"),
            auth_config(partner, p256),
            replace(auth_config(partner), private_key_pem=b"not a key"),
        ]
        for config in wrong:
            with pytest.raises(ValueError, match="key"):
                BackendServicesAuth(config, client)

    def test_the_key_stays_out_of_reprs(self, partner: Partner) -> None:
        assert "PRIVATE KEY" not in repr(auth_config(partner))
