"""OpenID Connect sign-in for staff (OIDC Core 1.0 authorization code flow with PKCE, RFC 7636).

Turned on by settings (OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET); the same staff
accounts and roles apply: the provider proves who the person is, and an administrator must
have created an enabled account with that username (`preferred_username`, else `email`).
"""

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from jwt.exceptions import PyJWTError

_ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
_FLOW_SECONDS = 600


class OidcFailed(Exception):
    """The provider's answer could not be trusted; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect out and the callback."""

    state: str
    nonce: str
    verifier: str


class OidcClient:
    def __init__(self, config: OidcConfig, http: httpx.Client, cookie_key: bytes) -> None:
        self._config = config
        self._http = http
        self._cookie_key = cookie_key
        self._metadata: dict[str, Any] | None = None

    def start(self) -> tuple[str, str]:
        """(the provider URL to redirect to, the signed value of the pending-login cookie)."""
        pending = PendingLogin(
            secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        )
        challenge = base64.urlsafe_b64encode(hashlib.sha256(pending.verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._config.client_id,
                "redirect_uri": self._config.redirect_uri,
                "scope": "openid profile email",
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )
        url = f"{self._discovered('authorization_endpoint')}?{query}"
        cookie = jwt.encode(
            {
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.verifier,
                "exp": int(time.time()) + _FLOW_SECONDS,
            },
            self._cookie_key,
            algorithm="HS256",
        )
        return url, cookie

    def finish(self, code: str, state: str, cookie: str | None) -> str:
        """The signed-in person's username, once the code, state and ID token all check out."""
        pending = self._pending(cookie)
        if not secrets.compare_digest(pending.state, state):
            raise OidcFailed("the state does not match this browser's sign-in")
        tokens = self._exchange(code, pending.verifier)
        claims = self._verified_id_token(tokens.get("id_token"), pending.nonce)
        username = claims.get("preferred_username") or claims.get("email")
        if not isinstance(username, str) or not username:
            raise OidcFailed("the ID token names no preferred_username or email")
        return username

    def _pending(self, cookie: str | None) -> PendingLogin:
        if cookie is None:
            raise OidcFailed("no sign-in is in progress in this browser")
        try:
            data = jwt.decode(cookie, self._cookie_key, algorithms=["HS256"])
        except PyJWTError:
            raise OidcFailed("the sign-in has expired or was tampered with") from None
        return PendingLogin(str(data["state"]), str(data["nonce"]), str(data["verifier"]))

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        try:
            response = self._http.post(
                self._discovered("token_endpoint"),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self._config.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self._config.client_id, self._config.client_secret),
                timeout=10.0,
            )
        except httpx.HTTPError:
            raise OidcFailed("the identity provider could not be reached") from None
        if response.status_code != 200:
            raise OidcFailed("the identity provider refused the authorization code")
        body: dict[str, Any] = response.json()
        return body

    def _verified_id_token(self, id_token: Any, nonce: str) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature, iss, aud, exp and nonce."""
        if not isinstance(id_token, str):
            raise OidcFailed("the provider returned no ID token")
        try:
            key_id = str(jwt.get_unverified_header(id_token).get("kid", ""))
            signing_key = self._provider_keys()[key_id]
            claims: dict[str, Any] = jwt.decode(
                id_token,
                signing_key.key,
                algorithms=_ID_TOKEN_ALGORITHMS,
                audience=self._config.client_id,
                issuer=self._config.issuer,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except (PyJWTError, KeyError) as error:
            raise OidcFailed(f"the ID token is not valid ({type(error).__name__})") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcFailed("the ID token's nonce does not match this sign-in")
        return claims

    def _provider_keys(self) -> jwt.PyJWKSet:
        try:
            response = self._http.get(self._discovered("jwks_uri"), timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError:
            raise OidcFailed("the identity provider's keys are unavailable") from None
        return jwt.PyJWKSet.from_dict(response.json())

    def _discovered(self, name: str) -> str:
        """An endpoint from the provider's discovery document (OIDC Discovery 1.0 §4)."""
        if self._metadata is None:
            url = self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                response = self._http.get(url, timeout=10.0)
                response.raise_for_status()
            except httpx.HTTPError:
                raise OidcFailed(
                    "the identity provider's discovery document is unavailable"
                ) from None
            metadata = response.json()
            if metadata.get("issuer") != self._config.issuer:
                raise OidcFailed("the discovery document names another issuer")
            self._metadata = metadata
        value = self._metadata.get(name)
        if not isinstance(value, str):
            raise OidcFailed(f"the discovery document has no {name}")
        return value
