"""Key pairs for SMART Backend Services clients, and the client assertions they sign.

A partner (or the demo, or a tester) needs a private key, its public JWKS to register, and
a signed assertion to trade for a token; these are the few lines every partner would otherwise
write by hand. The kid is the key's RFC 7638 thumbprint, so the key file alone says which
registered key signed, and `interop token` needs no kid option.
"""

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interop.cli.common import CliError

ALGORITHMS = ("RS384", "ES384")
PURPOSE_SYSTEM = "urn:oid:2.16.840.1.113883.5.8#"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


@dataclass(frozen=True, slots=True)
class KeyFiles:
    private_key: Path
    jwks: Path
    kid: str


def generate(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def write_key_pair(folder: Path, name: str, algorithm: str, *, replace: bool = False) -> KeyFiles:
    """A new key pair as NAME.key.pem (owner-only) and NAME.jwks.json (public, to register).

    Unless `replace` (the demo renewing its own keys), an existing file is refused before
    anything is written: overwriting a private key loses it, and a JWKS beside a key it does
    not match registers a partner that can never sign in. Both files are written or neither."""
    key_path = folder / f"{name}.key.pem"
    jwks_path = folder / f"{name}.jwks.json"
    if not replace:
        for path in (key_path, jwks_path):
            if path.exists() or path.is_symlink():
                raise CliError(
                    f"{path} already exists: move it away or choose another NAME or --dir "
                    "(keygen never overwrites a key)",
                    2,
                )
    private = generate(algorithm)
    jwk = public_jwk(private)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    written: list[Path] = []
    try:
        for path, content, mode in (
            (key_path, pem, 0o600),
            (jwks_path, (json.dumps({"keys": [jwk]}, indent=2) + "\n").encode(), 0o644),
        ):
            descriptor = os.open(path, flags, mode)
            written.append(path)
            with os.fdopen(descriptor, "wb") as output:
                output.write(content)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return KeyFiles(key_path, jwks_path, str(jwk["kid"]))


def public_jwk(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The public half as a JWK with its thumbprint kid, the algorithm and use `sig`."""
    algorithm = algorithm_of(private)
    jwk: dict[str, Any] = json.loads(
        jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(private.public_key())
    )
    return {**jwk, "kid": thumbprint(jwk), "alg": algorithm, "use": "sig"}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace; base64url."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def algorithm_of(private: object) -> str:
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS384"
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1":
        return "ES384"
    raise CliError("the key must be RSA or EC P-384 (SMART Backend Services: RS384 or ES384)", 2)


def load_private_key(path: Path, pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A PEM private key, or one line saying why the file is not one."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise CliError(
            f"{path} is not an unencrypted PEM private key ({error}): "
            "give the NAME.key.pem `interop partners keygen` wrote",
            2,
        ) from None
    algorithm_of(private)
    assert isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return private


def client_assertion(
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    client_id: str,
    token_url: str,
    purposes: list[str],
) -> str:
    """A SMART Backend Services assertion (four minutes to live) with the UDAP B2B purposes."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        "extensions": {
            "hl7-b2b": {
                "version": "1",
                "purpose_of_use": [PURPOSE_SYSTEM + purpose for purpose in purposes],
            }
        },
    }
    jwk = public_jwk(private)
    return jwt.encode(claims, private, algorithm=jwk["alg"], headers={"kid": jwk["kid"]})
