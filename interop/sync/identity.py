"""Who we are to partners' authorization servers: the key our client assertions are signed
with (SMART Backend Services), and its public half, which partners register as our JWKS."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


class SigningKeyError(ValueError):
    """The configured key cannot sign SMART client assertions."""


@dataclass(frozen=True, slots=True)
class SyncIdentity:
    private_key_pem: bytes = field(repr=False)
    kid: str
    alg: Literal["RS384", "ES384"]
    public_jwk: dict[str, Any]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def load_identity(path: Path, kid: str) -> SyncIdentity:
    """RSA (2048 bits or more) signs RS384, EC P-384 signs ES384: SMART's two algorithms."""
    pem = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from error
    alg: Literal["RS384", "ES384"]
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        alg, jwk = "RS384", RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        alg, jwk = "ES384", ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        raise SigningKeyError("the signing key must be RSA of 2048 bits or more, or EC P-384")
    public = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
    return SyncIdentity(pem, kid, alg, public)
