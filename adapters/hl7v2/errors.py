"""HL7 v2 error vocabulary: where an error is (ERR-2, ERL), what it is (table 0357), how bad.

A problem found in a received message is a value (`Problem`), returned with the message so the
caller can acknowledge it and keep the raw bytes for staff; `Hl7ParseError` is raised only by the
ER7 parser when a message cannot be split into segments at all, and carries the same location.

    adapters.errors.MalformedDocument
     └── Hl7ParseError(segment, sequence, field, reason)   the text is not ER7
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from adapters.errors import MalformedDocument

__all__ = ["AckCode", "ErrorCode", "Hl7ParseError", "Location", "Problem", "Severity"]


class AckCode(StrEnum):
    """MSA-1, HL7 table 0008: AA, AE and AR answer in original mode and are the application
    acknowledgment of enhanced mode; CA, CE and CR are enhanced mode's accept acknowledgment
    (the message is committed to safe storage, could not be, or is refused)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"
    COMMIT_ACCEPT = "CA"
    COMMIT_ERROR = "CE"
    COMMIT_REJECT = "CR"


class Severity(StrEnum):
    """ERR-4, HL7 table 0516."""

    ERROR = "E"
    WARNING = "W"
    INFORMATION = "I"


class ErrorCode(IntEnum):
    """ERR-3, HL7 table 0357 (message error condition codes)."""

    MESSAGE_ACCEPTED = 0
    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    VALUE_TOO_LONG = 104
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        """The table's display text for this code."""
        return _CODE_TEXT[self]


_CODE_TEXT = {
    ErrorCode.MESSAGE_ACCEPTED: "Message accepted",
    ErrorCode.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE_ERROR: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.VALUE_TOO_LONG: "Value too long",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION_ID: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """ERR-2 (ERL): segment ID, its occurrence in the message, then field, repetition, component.

    `sequence` counts occurrences of that segment ID, 1 for the first; `field` is the HL7 field
    number (MSH-1 is the field separator). None means "the whole segment" or "the whole field".
    """

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    def __str__(self) -> str:
        text = f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            text += f"-{self.field}"
            if self.repetition is not None and self.repetition > 1:
                text += f"({self.repetition})"
            if self.component is not None:
                text += f".{self.component}"
        return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a received message: where, which table 0357 code, how bad, why."""

    location: Location
    code: ErrorCode
    reason: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.location}: {self.reason} ({self.code.value} {self.code.text})"


class Hl7ParseError(MalformedDocument):
    """The text cannot be read as ER7 at all (no MSH, bad delimiters, a line that is no segment)."""

    def __init__(
        self,
        segment: str,
        sequence: int,
        field: int | None,
        reason: str,
        code: ErrorCode = ErrorCode.SEGMENT_SEQUENCE_ERROR,
    ) -> None:
        super().__init__(reason, str(Location(segment, sequence, field)))
        self.segment = segment
        self.sequence = sequence
        self.field = field
        self.reason = reason
        self.code = code

    @property
    def problem(self) -> Problem:
        """The error as a Problem, for the acknowledgment."""
        return Problem(Location(self.segment, self.sequence, self.field), self.code, self.reason)
