"""Typed errors for FHIR content that cannot be accepted, each carrying OperationOutcome issues.

    FhirContentError            the content is not an acceptable FHIR R4 resource
    ├── MalformedContent        it cannot be parsed at all (syntax, DOCTYPE, entities, wrong root)
    ├── InvalidResource         it parses, but breaks the R4 rules (structure, bindings, invariants)
    │   └── MappingError        it is valid R4, but cannot be mapped to or from the domain (a
    │                           wrong code, a missing element the domain needs, a reference to
    │                           the wrong resource type); one issue naming the element
    └── UnknownResourceType     its resourceType is not an R4 resource type this server knows

The edge maps them to HTTP statuses (400, 422, and the caller's choice for an unknown type, which
may be a 404 for a URL or a 400 for a body); the issues become the OperationOutcome unchanged.

What maps but has no place in the domain is not an error: `from_fhir` returns it as `Unmapped`
entries beside the value (`Mapped`), so nothing is dropped silently.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

_T = TypeVar("_T")

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what is wrong (IssueType code) and where (FHIRPath).

    `diagnostics` is written for a human and never echoes long input back, since error text
    travels to clients and logs.
    """

    severity: Severity
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()


class FhirContentError(Exception):
    """Root of the content errors; always carries at least one issue."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        if not self.issues:
            raise ValueError("a FHIR content error needs at least one issue")
        super().__init__(self.issues[0].diagnostics)


class MalformedContent(FhirContentError):
    """The bytes are not a parseable FHIR document: bad JSON/XML syntax, DTDs, wrong root."""


class InvalidResource(FhirContentError):
    """The document parses but is not a valid FHIR R4 resource."""


class UnknownResourceType(FhirContentError):
    """The resourceType is not an R4 resource type this server knows."""


class MappingError(InvalidResource):
    """An element that cannot be mapped: `path` is its FHIRPath, `reason` says why.

    A subclass of InvalidResource, so the edge answers it like any other unacceptable resource
    (422 with one OperationOutcome issue whose expression is `path`).
    """

    def __init__(self, path: str, reason: str, *, code: str = "value") -> None:
        self.path = path
        self.reason = reason
        super().__init__([Issue("error", code, reason, (path,))])

    def to_issue(self) -> Issue:
        """The OperationOutcome issue this error stands for."""
        return self.issues[0]


@dataclass(frozen=True, slots=True)
class Unmapped:
    """An element of a FHIR resource that the domain has no place for, reported, never dropped."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Mapped(Generic[_T]):
    """A domain value read from FHIR, with every element of the resource it could not keep."""

    value: _T
    unmapped: tuple[Unmapped, ...] = ()
