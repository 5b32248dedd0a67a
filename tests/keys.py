"""Keys generated in the test, JWKS built from them, and signed client assertions."""

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientKey:
    kid: str
    algorithm: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.get_default_algorithms()[self.algorithm].to_jwk(
                self.private.public_key()
            )
        )
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}


def rsa_key(kid: str = "rsa-1") -> ClientKey:
    return ClientKey(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1") -> ClientKey:
    return ClientKey(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))


def assertion(
    key: ClientKey,
    client_id: str,
    token_url: str,
    *,
    lifetime: int = 240,
    jti: str | None = None,
    purposes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A SMART Backend Services client assertion, with the UDAP hl7-b2b extension."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + lifetime,
        "iat": now,
        "jti": jti or str(uuid.uuid4()),
        "extensions": {
            "hl7-b2b": {
                "version": "1",
                "organization_id": "urn:oid:2.16.840.1.113883.3.9999.10",
                "purpose_of_use": purposes
                if purposes is not None
                else ["urn:oid:2.16.840.1.113883.5.8#TREAT"],
            }
        },
        **(extra or {}),
    }
    return jwt.encode(
        claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid, **(headers or {})}
    )


def token_form(signed: str, scope: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        "scope": scope,
    }
