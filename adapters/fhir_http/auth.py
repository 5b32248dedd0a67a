"""Access tokens from a partner's authorization server, as a SMART Backend Services client.

SMART App Launch 2.x, Backend Services (hl7.org/fhir/smart-app-launch/backend-services.html):
the client_credentials grant (RFC 6749 §4.4) authenticated by a private_key_jwt client
assertion (RFC 7523 §2.2): header alg RS384 or ES384, kid, typ JWT; claims iss = sub =
client_id, aud = the token URL, exp no more than five minutes ahead, a jti never used before;
the purposes of use, when configured, as the UDAP B2B extension `extensions.hl7-b2b`.
No iat: SMART does not ask for one, and a server refuses an iat ahead of its own clock.

A token is kept until shortly before its expires_in and shared by the deliveries to that
partner; `invalidate()` drops it when the partner answers 401 to it. The token endpoint's
answers map as every exchange's do (adapters.fhir_http.exchange), except that a refusal
("token refused") carries only the OAuth error code (RFC 6749 §5.2): error_description is free
text and may echo the assertion or the client id.
"""

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http.exchange import Answer, failure, post

__all__ = ["ASSERTION_TYPE", "BackendServicesAuth", "BackendServicesConfig"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME: Final = 240  # SMART allows 300 s; a minute to spare for clock skew
_REFRESH_EARLY: Final = 30.0  # seconds before expiry, so a token never expires in flight
_MAX_TOKEN_ANSWER: Final = 64 * 1024
_OAUTH_ERROR: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token


@dataclass(frozen=True, slots=True)
class BackendServicesConfig:
    """A partner's token endpoint and our registration with it; the key is a PEM, unencrypted."""

    token_url: str
    client_id: str
    private_key_pem: bytes = field(repr=False)
    kid: str
    alg: Literal["RS384", "ES384"]
    scope: str
    purposes: tuple[str, ...] = ()
    """v3-ActReason codes sent as the UDAP B2B `purpose_of_use` (e.g. TREAT): a server that
    decides 42 CFR Part 2 disclosures denies a request without a purpose (PART2.md S4)."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float


class BackendServicesAuth:
    """Bearer tokens for one partner, fetched with a signed client assertion and cached.

    Thread-safe: concurrent deliveries to one partner wait for one token request.
    `clock` gives the Unix time, for the assertion's claims and the cache.
    """

    def __init__(
        self,
        config: BackendServicesConfig,
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._key = _signing_key(config)
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def access_token(self) -> str:
        """The cached token while it is fresh, else a new one from the token endpoint."""
        with self._lock:
            now = self._clock()
            if self._token is None or self._token.refresh_at <= now:
                self._token = self._fetch(now)
            return self._token.value

    def invalidate(self) -> None:
        """Forget the cached token, which the partner no longer accepts."""
        with self._lock:
            self._token = None

    def _fetch(self, now: float) -> _Token:
        form = {
            "grant_type": "client_credentials",
            "scope": self._config.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(now),
        }
        try:
            answer = post(
                self._client,
                self._config.token_url,
                headers={"Accept": "application/json"},
                form=form,
                max_bytes=_MAX_TOKEN_ANSWER,
            )
            if not answer.succeeded:
                raise _refusal(answer)
            return _read_token(answer.body, now)
        except PartnerUnavailable as error:
            raise PartnerUnavailable(
                f"token endpoint: {error.reason}", error.retry_after
            ) from error

    def _assertion(self, now: float) -> str:
        claims = {
            "iss": self._config.client_id,
            "sub": self._config.client_id,
            "aud": self._config.token_url,
            "exp": int(now) + _ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        if self._config.purposes:
            claims["extensions"] = {
                "hl7-b2b": {
                    "version": "1",
                    "purpose_of_use": [_PURPOSE_SYSTEM + code for code in self._config.purposes],
                }
            }
        return jwt.encode(
            claims,
            self._key,
            algorithm=self._config.alg,
            headers={"kid": self._config.kid, "typ": "JWT"},
        )


_PURPOSE_SYSTEM: Final = "urn:oid:2.16.840.1.113883.5.8#"
"""v3-ActReason by OID, as UDAP B2B authorization extension objects name purposes."""


def _signing_key(
    config: BackendServicesConfig,
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key, refused at once when it cannot sign with the configured algorithm."""
    try:
        key = serialization.load_pem_private_key(config.private_key_pem, password=None)
    except (TypeError, ValueError):
        raise ValueError("the private key must be an unencrypted PEM") from None
    if config.alg == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if (
        config.alg == "ES384"
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP384R1)
    ):
        return key
    wanted = "an RSA" if config.alg == "RS384" else "a P-384 elliptic curve"
    raise ValueError(f"{config.alg} signs with {wanted} private key, which this key is not")


def _refusal(answer: Answer) -> PartnerUnavailable | PartnerRejected:
    """A 4xx other than 408 and 429 is the server refusing us, named by its OAuth error code."""
    status = answer.status
    if status in (408, 429) or not 400 <= status < 500:
        return failure(answer)
    return PartnerRejected("token refused", _oauth_error(answer.body) or f"HTTP {status}")


def _oauth_error(body: bytes | None) -> str | None:
    error = _json_object(body).get("error")
    return error if isinstance(error, str) and _OAUTH_ERROR.fullmatch(error) else None


def _read_token(body: bytes | None, now: float) -> _Token:
    """The token from a successful answer (RFC 6749 §5.1); kept for none of its life when the
    answer gives no expires_in, since then we cannot know when it ends."""
    answer = _json_object(body)
    value = answer.get("access_token")
    token_type = answer.get("token_type")
    if (
        not isinstance(value, str)
        or not _BEARER_TOKEN.fullmatch(value)
        or not isinstance(token_type, str)
        or token_type.lower() != "bearer"
    ):
        raise PartnerUnavailable("unreadable answer")
    expires_in = answer.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else 0.0
    )
    return _Token(value, now + max(0.0, lifetime - min(_REFRESH_EARLY, lifetime / 10)))


def _json_object(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
