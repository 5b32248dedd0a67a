"""Typed errors raised by the adapters, which speak external formats and transports.

    AdapterError            root: something outside the service could not be used
    ├── MalformedDocument   a document arrived but cannot be read safely (syntax, encoding,
    │                       DOCTYPE or entities, size or depth limits, not the expected kind)
    ├── PartnerUnavailable  a delivery did not get through, or its answer could not be trusted
    │                       (down, timed out, 5xx, 429, an unreadable answer): send it again
    └── PartnerRejected     the delivery cannot be made: sending it again will not help
        └── PartnerRefused  the partner read what was sent and refused it (4xx with an
                            OperationOutcome, an HL7 AE/AR)

The service maps each to an OperationOutcome at its edge; the adapters know nothing of HTTP.
"""


class AdapterError(Exception):
    """Root of the adapter errors."""


class MalformedDocument(AdapterError):
    """A received document that is refused, with why (`reason`) and where (`location`).

    `reason` is a short, stable sentence naming the cause (each format module lists its own, for
    the C-CDA reader `adapters.ccda.Refusal`); `location` is where in the input it was found
    ("line 25, column 1153", "byte offset 90210"), when known; `detail` is the underlying parser
    message, cut short, since error text travels to logs and partners and must not echo the
    document back.
    """

    def __init__(self, reason: str, location: str | None = None, detail: str | None = None) -> None:
        self.reason = reason
        self.location = location
        self.detail = detail
        message = reason if location is None else f"{reason} (at {location})"
        super().__init__(message if detail is None else f"{message}: {detail}")


class PartnerUnavailable(AdapterError):
    """Retryable: the delivery may not have arrived. Partners deduplicate by identifier, so
    sending again is safe. `retry_after` is the partner's own hint in seconds, when it gave one.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class PartnerRejected(AdapterError):
    """Permanent: the partner refused the delivery. `reason` is a short sentence of ours
    ("HTTP 422", "AR: required field missing"); `detail` is the partner's own explanation
    (OperationOutcome diagnostics, ERR text), cut short, never the payload sent."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(reason if detail is None else f"{reason}: {detail}")


class PartnerRefused(PartnerRejected):
    """The partner answered what was sent with a refusal: unlike a refusal before anything
    was sent (its token endpoint's, a channel we cannot use), what was sent reached it."""
