"""Client assertions of SMART Backend Services (private_key_jwt, RFC 7523) with the UDAP B2B
authorization extension.

SMART App Launch 2.x "Backend Services": the assertion is signed with RS384 or ES384 by a key
the client registered (a JWKS, or a JWKS URL); `iss` and `sub` are the client_id, `aud` is the
token endpoint, `exp` is at most five minutes ahead and `jti` is never reused. Anything else is
refused; in particular `alg: none` and HS256 (which would let the public key act as a secret).

UDAP Security IG "Business-to-Business" §5.2.1.1: the `extensions.hl7-b2b` object carries the
requesting organization and `purpose_of_use`; we also read the §2.51 medical-emergency facts
from `extensions.recovery-interop-emergency` ({personnel_name, personnel_affiliation,
nature_of_emergency, patient}), since the B2B object has no field for the nature of the
emergency nor for the patient it concerns.
"""

import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt
from jwt.exceptions import PyJWTError

from interop.auth.tokens import EmergencyFacts

ALGORITHMS = ("RS384", "ES384")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_PURPOSE_SYSTEMS = (
    "urn:oid:2.16.840.1.113883.5.8#",
    "http://terminology.hl7.org/CodeSystem/v3-ActReason#",
    "http://terminology.hl7.org/CodeSystem/v3-ActReason|",
)
EMERGENCY_EXTENSION = "recovery-interop-emergency"


class AssertionRejected(Exception):
    """The client could not be authenticated; `error` is the OAuth 2.0 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class UnverifiedAssertion:
    client_id: str
    key_id: str
    algorithm: str


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    client_id: str
    token_id: str
    expires_at: datetime
    purposes: tuple[str, ...]
    organization_id: str | None
    emergency: EmergencyFacts | None


def peek(assertion: str) -> UnverifiedAssertion:
    """Who claims to be calling and with which key, before anything is trusted."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except PyJWTError:
        raise AssertionRejected("invalid_client", "the client assertion is not a JWT") from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise AssertionRejected(
            "invalid_client", f"client assertions must be signed with {' or '.join(ALGORITHMS)}"
        )
    key_id = header.get("kid")
    client_id = claims.get("iss")
    if not isinstance(key_id, str) or not isinstance(client_id, str):
        raise AssertionRejected("invalid_client", "the assertion needs a kid header and an iss")
    return UnverifiedAssertion(client_id, key_id, str(algorithm))


def verify(
    assertion: str,
    unverified: UnverifiedAssertion,
    jwks: dict[str, Any],
    *,
    token_url: str,
    now: datetime,
    max_lifetime_seconds: int,
) -> VerifiedAssertion:
    """Check signature, audience, issuer, subject and lifetime against the client's JWKS."""
    key = _find_key(jwks, unverified)
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[unverified.algorithm],
            audience=token_url,
            issuer=unverified.client_id,
            options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_exp": False},
        )
    except PyJWTError as error:
        raise AssertionRejected("invalid_client", _describe(error)) from None
    if claims["sub"] != unverified.client_id:
        raise AssertionRejected("invalid_client", "the assertion's sub must equal its iss")
    expires = int(claims["exp"])
    if expires <= now.timestamp():
        raise AssertionRejected("invalid_client", "the client assertion has expired")
    if expires > now.timestamp() + max_lifetime_seconds:
        raise AssertionRejected(
            "invalid_client", f"exp may be at most {max_lifetime_seconds} seconds in the future"
        )
    extensions = _object(claims.get("extensions"))
    b2b = _object(extensions.get("hl7-b2b"))
    return VerifiedAssertion(
        client_id=unverified.client_id,
        token_id=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(expires, now.tzinfo),
        purposes=_purposes(b2b),
        organization_id=_optional_text(b2b.get("organization_id")),
        emergency=_emergency(extensions.get(EMERGENCY_EXTENSION)),
    )


def _find_key(jwks: dict[str, Any], unverified: UnverifiedAssertion) -> Any:
    """The registered key with the assertion's kid, usable with its algorithm."""
    for candidate in jwks.get("keys", []):
        if isinstance(candidate, dict) and candidate.get("kid") == unverified.key_id:
            try:
                return jwt.PyJWK.from_json(
                    json.dumps(candidate), algorithm=unverified.algorithm
                ).key
            except PyJWTError:
                raise AssertionRejected(
                    "invalid_client", "the registered key does not fit the assertion's algorithm"
                ) from None
    raise AssertionRejected("invalid_client", "no registered key has the assertion's kid")


def _purposes(b2b: dict[str, Any]) -> tuple[str, ...]:
    """purpose_of_use as bare v3-ActReason codes, whichever way the system was written."""
    raw = b2b.get("purpose_of_use", [])
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    codes: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value:
            continue
        code = value
        for prefix in _PURPOSE_SYSTEMS:
            code = code.removeprefix(prefix)
        codes.append(code)
    return tuple(codes)


_EMERGENCY_FIELDS: Final = (
    ("personnel_name", 200),
    ("personnel_affiliation", 200),
    ("nature_of_emergency", 1000),
    ("patient", 200),
)
"""The §2.51(c) facts and how long each may be: a name, not a document."""


def _emergency(raw: Any) -> EmergencyFacts | None:
    """The §2.51(c) facts, each stated: words a compliance officer can read, not blanks,
    invisible characters (zero-width spaces) or punctuation alone; otherwise no facts."""
    if not isinstance(raw, dict):
        return None
    values = [_stated(raw.get(name), limit) for name, limit in _EMERGENCY_FIELDS]
    if any(value is None for value in values):
        return None
    return EmergencyFacts(*(str(value) for value in values))


def _stated(value: Any, limit: int) -> str | None:
    """The fact as a compliance officer will read it, or None when it reads as nothing: it
    must keep a visible letter or digit once what renders as nothing is gone."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    visible = "".join(ch for ch in value if ch == " " or not _renders_as_nothing(ch))
    text = " ".join(visible.split())
    return text if any(_legible(ch) for ch in text) else None


def _renders_as_nothing(ch: str) -> bool:
    """Controls, format characters (zero-width spaces, joiners), separators, and the other
    default-ignorable characters, which Python's categories alone do not give away."""
    return ch in _IGNORABLE or unicodedata.category(ch)[0] in "CZ"


def _legible(ch: str) -> bool:
    """A letter or digit that shows: not a combining mark, which needs a letter to sit on."""
    return ch.isalnum() and unicodedata.category(ch)[0] in "LN"


_IGNORABLE: Final = frozenset(
    chr(code)
    for code in (
        0x034F,  # combining grapheme joiner (Mn)
        0x115F,  # Hangul choseong filler (Lo: a "letter" to isalnum)
        0x1160,  # Hangul jungseong filler (Lo)
        0x17B4,  # Khmer inherent vowels (Mn)
        0x17B5,
        0x3164,  # Hangul filler (Lo)
        0xFFA0,  # halfwidth Hangul filler (Lo)
        *range(0x180B, 0x1810),  # Mongolian variation selectors and vowel separator
        *range(0xFE00, 0xFE10),  # variation selectors (Mn)
        *range(0xE0100, 0xE01F0),  # variation selectors supplement (Mn)
    )
)
"""Unicode's Default_Ignorable_Code_Point characters outside the C and Z categories (the
`unicodedata` module does not expose the property): each renders as nothing."""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _describe(error: PyJWTError) -> str:
    """Say which check failed without echoing the token."""
    messages = {
        "InvalidAudienceError": "aud must be the token endpoint URL",
        "InvalidIssuerError": "iss must be the client_id",
        "InvalidSignatureError": "the signature does not verify with the registered key",
        "MissingRequiredClaimError": f"a required claim is missing: {error}",
    }
    return messages.get(type(error).__name__, "the client assertion is not valid")
