"""SMART scopes, v2 (`system/Task.cru`) and v1 (`system/*.read`), as sets of permissions.

SMART App Launch 2.x §3.1 "Scopes for requesting FHIR resources": v2 permissions are the
letters c, r, u, d, s in that order; v1 `read` is v2 `rs`, `write` is `cud`, `*` is all.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

PERMISSIONS = "cruds"
_SCOPE_RE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class InvalidScope(ValueError):
    """A scope string that is neither SMART v1 nor v2."""


@dataclass(frozen=True, slots=True)
class Scope:
    context: str
    resource_type: str  # a type or "*"
    permissions: frozenset[str]

    def __str__(self) -> str:
        letters = "".join(letter for letter in PERMISSIONS if letter in self.permissions)
        return f"{self.context}/{self.resource_type}.{letters}"

    def covers(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)


def parse_scope(text: str) -> Scope:
    match = _SCOPE_RE.match(text)
    if match is None or match.group(3) == "":
        raise InvalidScope(f"{text[:80]!r} is not a SMART v1 or v2 resource scope")
    context, resource_type, permissions = match.groups()
    letters = _V1.get(permissions, permissions)
    return Scope(context, resource_type, frozenset(letters))


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """Space-separated scopes; non-resource scopes (openid, launch...) are not ours to grant."""
    return tuple(parse_scope(item) for item in text.split() if "/" in item)


def allows(scopes: Iterable[Scope], resource_type: str, permission: str) -> bool:
    """Does any system scope grant `permission` (one of c r u d s) on `resource_type`?"""
    return any(
        scope.context == "system"
        and scope.covers(resource_type)
        and permission in scope.permissions
        for scope in scopes
    )


def grant(requested: Iterable[Scope], registered: Iterable[Scope]) -> tuple[Scope, ...]:
    """What may be granted: each requested scope narrowed to what the partner is registered for."""
    registered = tuple(registered)
    granted: list[Scope] = []
    for wanted in requested:
        for allowed in registered:
            if wanted.context != "system" or allowed.context != "system":
                continue
            kind = _narrower_type(wanted.resource_type, allowed.resource_type)
            permissions = wanted.permissions & allowed.permissions
            if kind is not None and permissions:
                candidate = Scope("system", kind, permissions)
                if candidate not in granted:
                    granted.append(candidate)
    return tuple(granted)


def _narrower_type(first: str, second: str) -> str | None:
    if first == "*":
        return second
    if second in ("*", first):
        return first
    return None


def format_scopes(scopes: Iterable[Scope]) -> str:
    return " ".join(str(scope) for scope in scopes)
