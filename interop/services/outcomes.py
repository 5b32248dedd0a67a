"""The one table from typed errors to (HTTP status, OperationOutcome).

Both the REST edge (interop.api) and Bundle processing (a batch entry's response.status) use
it, so a failure reads the same whichever way it was requested.
"""

from typing import Any

from interop.services.errors import (
    BusinessRuleBroken,
    Forbidden,
    InvalidRequest,
    PreconditionFailed,
    ResourceGone,
    ResourceNotFound,
    ServiceError,
    TooCostly,
    TransactionFailed,
    VersionConflict,
)
from mappings.errors import (
    FhirContentError,
    InvalidResource,
    Issue,
    MalformedContent,
    UnknownResourceType,
)

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (MalformedContent, 400),
    (UnknownResourceType, 400),
    (InvalidResource, 422),
    (InvalidRequest, 400),
    (Forbidden, 403),
    (ResourceNotFound, 404),
    (ResourceGone, 410),
    (VersionConflict, 409),
    (PreconditionFailed, 412),
    (BusinessRuleBroken, 422),
    (TooCostly, 413),
)

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
}
"""RFC 9110 §15's reason phrases (422 is "Unprocessable Content" there, no longer RFC 4918's
"Unprocessable Entity"): Bundle response lines and problem detail titles."""


def status_of(error: Exception) -> int:
    if isinstance(error, TransactionFailed):
        return status_of(error.cause)
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def status_line(status: int) -> str:
    """A Bundle response.status: the code, then the reason phrase (R4 Bundle.entry.response)."""
    return f"{status} {REASONS.get(status, '')}".strip()


def outcome_of(error: Exception) -> dict[str, Any]:
    """The OperationOutcome describing `error`; unexpected errors say nothing of their cause."""
    if isinstance(error, TransactionFailed):
        return _in_entry(outcome_of(error.cause), error.index)
    if isinstance(error, FhirContentError):
        return outcome(*error.issues)
    if isinstance(error, ServiceError):
        return outcome(Issue("error", error.issue_code, error.message, error.expression))
    return outcome(Issue("fatal", "exception", "the server could not complete the request"))


def outcome(*issues: Issue) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [_issue(issue) for issue in issues]}


def _issue(issue: Issue) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "severity": issue.severity,
        "code": issue.code,
        "diagnostics": issue.diagnostics,
    }
    if issue.expression:
        rendered["expression"] = list(issue.expression)
    return rendered


def _in_entry(document: dict[str, Any], index: int) -> dict[str, Any]:
    """Point each issue at the failing entry: Bundle.entry[3].resource.status, not .status."""
    for issue in document["issue"]:
        expressions = issue.get("expression") or []
        issue["expression"] = [
            f"Bundle.entry[{index}].resource.{e.split('.', 1)[1]}"
            if "." in e
            else f"Bundle.entry[{index}]"
            for e in expressions
        ] or [f"Bundle.entry[{index}]"]
        issue["diagnostics"] = f"entry {index}: {issue['diagnostics']}"
    return document
