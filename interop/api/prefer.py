"""`Prefer` read as RFC 7240 §2 has it: several header lines mean what one comma-separated
line does, "if any preference is specified more than once, only the first instance is to be
considered", and a value is a token or a quoted-string (`return="minimal"` is `return=minimal`).

Every route reads Prefer as one value (`handling=strict`, `return=minimal`, `respond-async`),
so the lines are normalized once, before routing, into one line holding the first instance
of each preference, each written one way (its name in lower case, since names compare
case-insensitively, a quoted value unquoted when it is a token, an empty one left out, as
§2 makes it the same as none): no reader then takes a later line, a repeated preference or a
quoted value for another than the one that counts.
"""

import re
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

_PREFER: Final = b"prefer"
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED: Final = r'"(?:[^"\\]|\\.)*"'
_PAIR: Final = re.compile(rf"\s*({_TOKEN.pattern})\s*(?:=\s*({_TOKEN.pattern}|{_QUOTED})?)?\s*")
"""`token [ BWS "=" BWS word ]`, a preference's or a parameter's (RFC 7240 §2)."""
_ESCAPED: Final = re.compile(r"\\(.)")


class CombinedPrefer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = _combined(scope)
        await self.app(scope, receive, send)


def _combined(scope: Scope) -> Scope:
    lines = [value for name, value in scope["headers"] if name == _PREFER]
    if not lines:
        return scope
    combined = first_of_each(b",".join(lines).decode("latin-1")).encode("latin-1")
    if lines == [combined]:
        return scope
    others = [(name, value) for name, value in scope["headers"] if name != _PREFER]
    return {**scope, "headers": [*others, (_PREFER, combined)]}


def first_of_each(value: str) -> str:
    """The preferences of a Prefer value, each written one way, the first instance of each
    name only."""
    seen: set[str] = set()
    kept: list[str] = []
    for preference in _split(value, ","):
        pieces = [_normalized(piece) for piece in _split(preference, ";")]
        name = pieces[0].split("=", 1)[0]
        if name and name not in seen:
            seen.add(name)
            kept.append("; ".join(piece for piece in pieces if piece))
    return ", ".join(kept)


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at each `separator` outside a quoted-string, which may hold one."""
    pieces: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


def _normalized(piece: str) -> str:
    """`name=value` with the name in lower case and a quoted token unquoted; an empty value
    means none; a piece that is no `token [= word]` is kept as sent, trimmed."""
    pair = _PAIR.fullmatch(piece)
    if pair is None:
        return piece.strip()
    name, word = pair.group(1).lower(), pair.group(2) or ""
    value = _ESCAPED.sub(r"\1", word[1:-1]) if word.startswith('"') else word
    if not value:
        return name
    return f"{name}={value}" if _TOKEN.fullmatch(value) else f"{name}={word}"
