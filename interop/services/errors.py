"""The typed errors of the FHIR use cases; interop.api.outcomes turns each into a status.

ServiceError
├── InvalidRequest        the request itself is wrong (bad id, bad search value...)
│   └── SearchTooCostly   a search naming more than one query may hold
├── ResourceNotFound      nothing with that type, id or version
├── ResourceGone          it existed and was deleted
├── Forbidden             the requester may not do this (scope, or partner isolation)
├── VersionConflict       another writer got there first
│   └── AlreadyExists     what is to be made once is there already (a partner's registration)
├── PreconditionFailed    If-Match / If-None-Exist did not hold
├── BusinessRuleBroken    valid FHIR that the workflow forbids (a Task's status move)
├── TooCostly             past a limit of what one resource or Bundle may cost
└── TransactionFailed     one entry of a transaction failed; nothing was written
"""

from dataclasses import dataclass

from mappings.errors import FhirContentError


class ServiceError(Exception):
    """An expected failure of a use case, with the OperationOutcome issue type it maps to."""

    issue_code = "processing"

    def __init__(self, message: str, expression: tuple[str, ...] = ()) -> None:
        """`expression`: the FHIRPath of the elements at fault, where one is (README: errors
        are OperationOutcomes with FHIRPath expressions)."""
        super().__init__(message)
        self.message = message
        self.expression = expression


class InvalidRequest(ServiceError):
    issue_code = "invalid"


class SearchTooCostly(InvalidRequest):
    """A search past what one query may name: 400 (no body was too large), issue too-costly."""

    issue_code = "too-costly"


class NotSupported(InvalidRequest):
    """A request this server understands and does not serve: 400, issue not-supported."""

    issue_code = "not-supported"


class ResourceNotFound(ServiceError):
    issue_code = "not-found"


class ResourceGone(ServiceError):
    issue_code = "deleted"


class Forbidden(ServiceError):
    issue_code = "forbidden"


class ScopeInsufficient(Forbidden):
    """The access token is valid, but its scopes do not reach the interaction: 403 with the
    Bearer challenge's `insufficient_scope` (RFC 6750 §3.1)."""


class VersionConflict(ServiceError):
    issue_code = "conflict"


class AlreadyExists(VersionConflict):
    """A second registration of what is registered once: 409, issue duplicate."""

    issue_code = "duplicate"


class PreconditionFailed(ServiceError):
    issue_code = "conflict"


class BusinessRuleBroken(ServiceError):
    issue_code = "business-rule"


class TooCostly(ServiceError):
    issue_code = "too-costly"


@dataclass
class TransactionFailed(Exception):
    """Entry `index` of a transaction Bundle failed with `cause`; the store is unchanged."""

    index: int
    cause: ServiceError | FhirContentError
