"""Access tokens: short-lived JWTs signed by this service (HS256 with the configured key).

The token carries everything the disclosure gate needs about the requester, so that checking
a request costs one HMAC and no lookup: the client, its Organization, the granted scopes, the
purpose of use bound at issue time (UDAP B2B), and the §2.51 emergency facts when given.
"""

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from interop.auth.scopes import Scope, format_scopes, parse_scopes

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired, or not ours."""


@dataclass(frozen=True, slots=True)
class EmergencyFacts:
    """What 42 CFR §2.51(c) requires to be recorded for a medical-emergency disclosure, and
    the patient the emergency is about (`Patient/{id}` here, or an identifier as
    `system|value`): §2.51 reaches that patient's records, never anyone else's."""

    personnel_name: str
    personnel_affiliation: str
    nature_of_emergency: str
    patient: str = ""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    client_id: str
    organization: str  # "Organization/{id}"
    scopes: tuple[Scope, ...]
    purposes: tuple[str, ...]  # v3-ActReason codes
    emergency: EmergencyFacts | None
    expires_at: datetime
    token_id: str
    issued_at: datetime


def issue(
    *,
    client_id: str,
    organization: str,
    scopes: tuple[Scope, ...],
    purposes: tuple[str, ...],
    emergency: EmergencyFacts | None,
    audience: str,
    key: bytes,
    now: datetime,
    lifetime: timedelta,
) -> tuple[str, AccessClaims]:
    claims = AccessClaims(
        client_id=client_id,
        organization=organization,
        scopes=scopes,
        purposes=purposes,
        emergency=emergency,
        expires_at=now + lifetime,
        token_id=str(uuid.uuid4()),
        issued_at=_to_the_millisecond(now),
    )
    payload: dict[str, Any] = {
        "iss": audience,
        "aud": audience,
        "sub": client_id,
        "iat": claims.issued_at.timestamp(),  # RFC 7519 NumericDate: fractions allowed
        "exp": int(claims.expires_at.timestamp()),
        "jti": claims.token_id,
        "scope": format_scopes(scopes),
        "org": organization,
        "purpose_of_use": list(purposes),
    }
    if emergency is not None:
        payload["emergency"] = asdict(emergency)
    return jwt.encode(payload, key, algorithm=ALGORITHM), claims


def _to_the_millisecond(moment: datetime) -> datetime:
    """A key rotation is recorded to the millisecond (partners.credentials_since): a token
    issued in the same second, before it, must still read as earlier."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def verify(token: str, *, key: bytes, audience: str, now: datetime) -> AccessClaims:
    """The claims of a token this service issued; InvalidToken for anything else."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=audience,
            options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(type(error).__name__) from None
    if payload["exp"] <= now.timestamp():
        raise InvalidToken("ExpiredSignatureError")
    emergency = payload.get("emergency")
    return AccessClaims(
        client_id=str(payload["sub"]),
        organization=str(payload["org"]),
        scopes=parse_scopes(str(payload.get("scope", ""))),
        purposes=tuple(str(code) for code in payload.get("purpose_of_use", [])),
        emergency=EmergencyFacts(**emergency) if isinstance(emergency, dict) else None,
        expires_at=datetime.fromtimestamp(payload["exp"], now.tzinfo),
        token_id=str(payload["jti"]),
        issued_at=datetime.fromtimestamp(payload["iat"], now.tzinfo),
    )
