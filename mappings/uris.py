"""One spelling of a URL among those RFC 3986 §6 holds equivalent, to tell documents apart.

A signed consent form is named by a URL (`Consent.sourceAttachment.url`); a copy of a revoked
consent must not pass for another document by spelling that URL otherwise (PART2.md C5, C6).
"""

import contextlib
import re
import string
from typing import Final
from urllib.parse import urlsplit, urlunsplit

_PERCENT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ftp": 21}


def document_url(url: str) -> str:
    """The URL as the document it names (RFC 3986 §6.2.2 syntax-based and §6.2.3
    scheme-based normalization): scheme and host in lower case, percent-encodings of
    unreserved characters decoded and the rest in upper-case hex, `.`/`..` segments removed,
    a default or empty port dropped, an empty http(s) path as `/`. Beyond §6 and for the same
    reason: a host's trailing dot (the absolute DNS name, RFC 1034 §3.1) and the fragment (a
    place within the document, §3.5) change nothing. A URL that does not parse stays as
    written."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    netloc = _authority(parts.netloc, parts.hostname, port, scheme) if parts.netloc else ""
    path = _percent_normalized(parts.path)
    if path.startswith("/"):
        path = _without_dot_segments(path)
    if not path and netloc and scheme in _DEFAULT_PORTS:
        path = "/"
    return urlunsplit((scheme, netloc, path, _percent_normalized(parts.query), ""))


def _authority(netloc: str, hostname: str | None, port: int | None, scheme: str) -> str:
    """userinfo@host:port with the host normalized; userinfo is case-sensitive, kept."""
    userinfo, at, _ = netloc.rpartition("@")
    host = _percent_normalized(hostname or "").lower().rstrip(".")
    if not host.isascii():
        with contextlib.suppress(UnicodeError):  # else compared as written, lower-cased
            host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal, which urlsplit gave without its brackets
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{_percent_normalized(userinfo)}{at}{host}"


def _percent_normalized(text: str) -> str:
    """§6.2.2.1-2: `%41` is `A`, `%2e` is `.`; `%2f` stays an escaped `/`, as `%2F`."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(one, text)


def _without_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 remove_dot_segments, for an absolute path."""
    kept: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if len(kept) > 1:  # never above the root, which kept[0] == "" stands for
                kept.pop()
            continue
        kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." names the directory "/a/"
    return "/".join(kept)
