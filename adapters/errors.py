"""Typed errors raised by the adapters, which speak external formats and transports.

    AdapterError            root: something outside the service could not be used
    └── MalformedDocument   a document arrived but cannot be read safely (syntax, encoding,
                            DOCTYPE or entities, size or depth limits, not the expected kind)

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
