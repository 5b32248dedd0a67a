"""Partner JWKS published at a URL: fetched with httpx and cached, refetched on rotation."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from interop.auth.assertions import AssertionRejected
from interop.store.fhirdates import as_utc

_MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Fetched:
    at: float  # on the monotonic clock, for the time to live
    on: datetime  # on the wall clock, to compare with a rotation recorded in the database
    jwks: dict[str, Any]


class JwksFetcher:
    """Fetches JWKS documents, keeping each for `ttl_seconds` (0 disables caching)."""

    def __init__(
        self,
        client: httpx.Client,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: dict[str, _Fetched] = {}

    def get(self, url: str, *, key_id: str, not_before: datetime | None = None) -> dict[str, Any]:
        """The JWKS at `url`; fetched again when it lacks `key_id`, since keys rotate, and
        when it was fetched before `not_before` (the partner's keys were rotated since, by an
        operator in another process: a stolen key still in a cached set must not mint)."""
        cached = self._cache.get(url)
        if (
            cached is not None
            and self._clock() - cached.at < self._ttl
            and (not_before is None or cached.on >= as_utc(not_before))
            and _has_key(cached.jwks, key_id)
        ):
            return cached.jwks
        jwks = self._fetch(url)
        self._cache[url] = _Fetched(self._clock(), self._wall_clock(), jwks)
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
