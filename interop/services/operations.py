"""The inputs of FHIR operations as R4 defines them: a resource posted as itself, or inside the
operation's Parameters resource (R4 §3.1.0.18: both forms are the operation's)."""

from collections.abc import Sequence
from typing import Any

from interop.services.errors import InvalidRequest

_TYPE_LEVEL_MODES = ("create", None)
"""Resource-validate's modes a type-level call can answer; update and delete name a stored
resource ([type]/[id]/$validate), which this server does not offer."""


def validated_resource(
    body: dict[str, Any], query: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """The resource a $validate asks about: the body itself, or its Parameters' `resource`.
    A resource posted as itself takes the other parameters in the URL (R4 §3.1.0.18.1), so
    `mode` is checked there too (probe 13 #8: `?mode=update` was ignored)."""
    if body.get("resourceType") != "Parameters":
        for name, value in query:
            if name == "mode":
                _check_mode(value)
        return body
    parameters = body.get("parameter")
    named = {
        str(parameter.get("name")): parameter
        for parameter in (parameters if isinstance(parameters, list) else ())
        if isinstance(parameter, dict)
    }
    _check_mode(named.get("mode", {}).get("valueCode"))  # absent: create
    resource = named.get("resource", {}).get("resource")
    if not isinstance(resource, dict):
        raise InvalidRequest("a Parameters body for $validate carries the resource to validate")
    return resource


def _check_mode(mode: Any) -> None:
    if mode not in _TYPE_LEVEL_MODES:
        raise InvalidRequest(
            f"$validate mode {str(mode)[:20]!r} is not offered: only create, at the type level"
        )
