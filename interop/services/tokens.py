"""The token endpoint and bearer-token checking of SMART Backend Services (SMART App Launch 2.x)."""

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from consent.vocabulary import ETREAT, purpose_closure
from interop.auth import assertions, tokens
from interop.auth.assertions import ASSERTION_TYPE, AssertionRejected
from interop.auth.jwks import JwksFetcher
from interop.auth.requester import Requester
from interop.auth.scopes import InvalidScope, format_scopes, grant, parse_scopes
from interop.services.partners import Partner, PartnerService
from interop.store.database import unit_of_work
from interop.store.tables import UsedAssertionRow


class TokenRefused(Exception):
    """An OAuth 2.0 error response (RFC 6749 §5.2): `error` code and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class Unauthenticated(Exception):
    """No valid bearer token: 401 with a WWW-Authenticate challenge, whose error code is left
    out when no token was presented at all (RFC 6750 §3.1)."""

    def __init__(self, message: str, *, presented: bool = True) -> None:
        super().__init__(message)
        self.presented = presented


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    signing_key: bytes
    access_token_lifetime: timedelta
    assertion_max_lifetime_seconds: int


@dataclass(frozen=True, slots=True)
class Endpoints:
    token_url: str
    fhir_base: str


class TokenService:
    def __init__(
        self,
        engine: Engine,
        partners: PartnerService,
        fetcher: JwksFetcher,
        policy: TokenPolicy,
    ) -> None:
        self._engine = engine
        self._partners = partners
        self._fetcher = fetcher
        self._policy = policy
        self._verified = VerifiedTokens()

    def issue(self, form: Mapping[str, str], endpoints: Endpoints, now: datetime) -> dict[str, Any]:
        """client_credentials with a private_key_jwt assertion -> a short-lived access token."""
        if form.get("grant_type") != "client_credentials":
            raise TokenRefused("unsupported_grant_type", "only client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenRefused(
                "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}", 401
            )
        assertion = form.get("client_assertion", "")
        try:
            verified, partner = self._authenticate_client(assertion, endpoints.token_url, now)
        except AssertionRejected as rejected:
            raise TokenRefused(rejected.error, rejected.description, 401) from None
        scopes = self._granted_scopes(form.get("scope", ""), partner)
        purposes = verified.purposes
        emergency = verified.emergency if _emergency_purpose(purposes) else None
        token, claims = tokens.issue(
            client_id=partner.client_id,
            organization=partner.organization,
            scopes=scopes,
            purposes=purposes,
            emergency=emergency,
            audience=endpoints.fhir_base,
            key=self._policy.signing_key,
            now=now,
            lifetime=self._policy.access_token_lifetime,
        )
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(self._policy.access_token_lifetime.total_seconds()),
            "scope": format_scopes(claims.scopes),
        }

    def authenticate(self, authorization: str | None, fhir_base: str, now: datetime) -> Requester:
        """The requester behind `Authorization: Bearer ...`; its partner must still be enabled."""
        if authorization is None or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("a bearer access token is required", presented=False)
        claims = self._verified.claims(
            authorization[7:].strip(), fhir_base, now, self._policy.signing_key
        )
        partner = self._partners.standing(claims.client_id)
        if partner is None or not partner.enabled:
            raise Unauthenticated("the access token's client is not enabled")
        if not partner.issued_with_current_keys(claims.issued_at):
            raise Unauthenticated("the access token was issued before the client's keys changed")
        return Requester(
            client_id=claims.client_id,
            organization=claims.organization,
            scopes=claims.scopes,
            purposes=claims.purposes,
            emergency=claims.emergency,
            part2_program=partner.part2_program,
            covered_entity=partner.covered_entity,
            first_party=partner.first_party,
        )

    def _authenticate_client(
        self, assertion: str, token_url: str, now: datetime
    ) -> tuple[assertions.VerifiedAssertion, Partner]:
        unverified = assertions.peek(assertion)
        partner = self._partners.find(unverified.client_id)
        if partner is None or not partner.enabled:
            raise AssertionRejected("invalid_client", "unknown or disabled client")
        jwks = partner.jwks
        if jwks is None:
            assert partner.jwks_url is not None
            jwks = self._fetcher.get(
                partner.jwks_url, key_id=unverified.key_id, not_before=partner.credentials_since
            )
        verified = assertions.verify(
            assertion,
            unverified,
            jwks,
            token_url=token_url,
            now=now,
            max_lifetime_seconds=self._policy.assertion_max_lifetime_seconds,
        )
        self._remember(verified, now)
        return verified, partner

    def _remember(self, verified: assertions.VerifiedAssertion, now: datetime) -> None:
        """Record the jti; a second use of it is a replay (RFC 7523 §3, SMART: jti not reused)."""
        try:
            with unit_of_work(self._engine) as session:
                session.execute(
                    delete(UsedAssertionRow).where(col(UsedAssertionRow.expires_at) < now)
                )
                session.add(
                    UsedAssertionRow(
                        client_id=verified.client_id,
                        jti=verified.token_id,
                        expires_at=verified.expires_at,
                    )
                )
        except IntegrityError:
            raise AssertionRejected(
                "invalid_client", "this client assertion was already used"
            ) from None

    def _granted_scopes(self, requested: str, partner: Partner) -> tuple[Any, ...]:
        try:
            wanted = parse_scopes(requested)
        except InvalidScope as error:
            raise TokenRefused("invalid_scope", str(error)) from None
        granted = grant(wanted, parse_scopes(partner.scopes))
        if not granted:
            raise TokenRefused("invalid_scope", "none of the requested scopes can be granted")
        return granted


class VerifiedTokens:
    """Tokens whose signature was checked, kept by their exact text: a partner presents the
    same token for minutes, and checking an HMAC-signed JWT again each time is most of what
    authenticating costs. Expiry is still checked on every request."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], tokens.AccessClaims] = OrderedDict()

    def claims(self, token: str, audience: str, now: datetime, key: bytes) -> tokens.AccessClaims:
        """The token's claims, or Unauthenticated when it is not valid now."""
        with self._lock:
            kept = self._kept.get((token, audience))
        if kept is None:
            try:
                kept = tokens.verify(token, key=key, audience=audience, now=now)
            except tokens.InvalidToken:
                raise Unauthenticated("the access token is not valid") from None
            with self._lock:
                self._kept[(token, audience)] = kept
                if len(self._kept) > self._capacity:
                    self._kept.popitem(last=False)
        if kept.expires_at <= now:
            raise Unauthenticated("the access token is not valid")
        return kept


def _emergency_purpose(purposes: tuple[str, ...]) -> bool:
    """ETREAT or one of its children (BTG...): only then do the §2.51 facts travel."""
    return any(ETREAT in purpose_closure(purpose) for purpose in purposes)
