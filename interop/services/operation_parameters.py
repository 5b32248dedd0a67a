"""An operation invoked by POST takes its parameters as a Parameters resource (R4 §3.1.0.9,
operations.html: "Servers SHALL support POST method for all operations"); each one with a
primitive value, or a reference, means what the same name in the URL of a GET does, so both
forms are answered by one service call."""

from typing import Any

from interop.services.errors import InvalidRequest

_PRIMITIVE = (str, int, float, bool)


def as_query(parameters: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The body's parameters as (name, value) pairs, in order; an absent body names none."""
    if parameters is None:
        return []
    kind = parameters.get("resourceType")
    if kind != "Parameters":
        raise InvalidRequest(
            f"an operation's body is a Parameters resource, not {str(kind)[:40]!r}",
            ("Parameters",),
        )
    return [_pair(number, item) for number, item in enumerate(parameters.get("parameter") or [])]


def _pair(number: int, item: Any) -> tuple[str, str]:
    where = f"Parameters.parameter[{number}]"
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest("each parameter needs a name", (f"{where}.name",))
    values = [value for key, value in item.items() if key.startswith("value")]
    if len(values) == 1 and isinstance(values[0], _PRIMITIVE):
        return name, _text(values[0])
    if len(values) == 1 and isinstance(values[0], dict) and "reference" in values[0]:
        return name, str(values[0]["reference"])
    raise InvalidRequest(
        f"parameter {name[:40]!r} needs one value: a primitive or a reference", (where,)
    )


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
