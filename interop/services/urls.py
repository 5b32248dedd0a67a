"""Where patient data may be sent: https, or plain http to this machine's loopback."""

from typing import Final
from urllib.parse import urlsplit

from interop.services.errors import InvalidRequest

_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})


def require_https(url: str, what: str) -> None:
    """https, or plain http to this machine's loopback (a tunnel, or tests); parsed, so that
    "http://127.0.0.1.evil.example" or "http://127.0.0.1@evil.example" are not loopback."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidRequest(f"{what} is not a URL") from None
    if parts.username is not None or parts.password is not None or not hostname:
        raise InvalidRequest(f"{what} must name a host, without credentials")
    if parts.scheme == "https" or (parts.scheme == "http" and hostname in _LOOPBACK):
        return
    raise InvalidRequest(f"{what} must use https")
