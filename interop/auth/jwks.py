"""Partner JWKS published at a URL: fetched with httpx and cached, refetched on rotation."""

import time
from collections.abc import Callable
from typing import Any

import httpx

from interop.auth.assertions import AssertionRejected

_MAX_JWKS_BYTES = 256 * 1024


class JwksFetcher:
    """Fetches JWKS documents, keeping each for `ttl_seconds` (0 disables caching)."""

    def __init__(
        self,
        client: httpx.Client,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, url: str, *, key_id: str) -> dict[str, Any]:
        """The JWKS at `url`; fetched again when it lacks `key_id`, since keys rotate."""
        cached = self._cache.get(url)
        fresh = cached is not None and self._clock() - cached[0] < self._ttl
        if fresh and cached is not None and _has_key(cached[1], key_id):
            return cached[1]
        jwks = self._fetch(url)
        self._cache[url] = (self._clock(), jwks)
        return jwks

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = self._client.get(url, timeout=5.0, follow_redirects=False)
        except httpx.HTTPError:
            raise AssertionRejected(
                "invalid_client", "the client's JWKS URL could not be fetched"
            ) from None
        if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
            raise AssertionRejected("invalid_client", "the client's JWKS URL did not return a JWKS")
        try:
            document = response.json()
        except ValueError:
            raise AssertionRejected(
                "invalid_client", "the client's JWKS URL did not return JSON"
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise AssertionRejected("invalid_client", "the client's JWKS URL did not return a JWKS")
        return document


def _has_key(jwks: dict[str, Any], key_id: str) -> bool:
    return any(isinstance(key, dict) and key.get("kid") == key_id for key in jwks.get("keys", []))
