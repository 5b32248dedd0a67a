"""ER7, the pipe-and-hat encoding of HL7 v2: bytes to a segment tree and back, without I/O.

A message is segments separated by CR; a segment is a three-character ID and fields separated by
MSH-1; a field is repetitions (MSH-2[1]) of components (MSH-2[0]) of subcomponents (MSH-2[3]);
text in a leaf escapes the delimiters with MSH-2[2] (HL7 v2.5.1 chapter 2, sections 2.5-2.7).

The tree keeps every level, so `parse_message(encode_message(m)) == m`: a field is a non-empty
tuple of repetitions, a repetition a non-empty tuple of components, a component a non-empty
tuple of unescaped subcomponent strings; an empty field is `((("",),),)`. In MSH, BHS and FHS
the first two fields are the field separator and the encoding characters, kept as written.

Line endings are normalised to CR before splitting: a parser that only splits on CR reads an
LF-separated message as a single segment without complaint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from adapters.hl7v2.errors import Hl7ParseError

__all__ = [
    "DEFAULT_ENCODING",
    "ENVELOPE_SEGMENTS",
    "HEADER_SEGMENTS",
    "Chunk",
    "Component",
    "EncodingCharacters",
    "Field",
    "Message",
    "MessageHeader",
    "Repetition",
    "Segment",
    "decode",
    "encode_field",
    "encode_message",
    "encode_segment",
    "escape",
    "header_encoding",
    "is_empty",
    "leaf",
    "normalize_line_endings",
    "parse_field",
    "parse_message",
    "parse_segment",
    "sniff_header",
    "split_batch",
    "unescape",
]

Component = tuple[str, ...]
"""The subcomponents of one component, unescaped."""
Repetition = tuple[Component, ...]
Field = tuple[Repetition, ...]

HEADER_SEGMENTS = frozenset({"MSH", "BHS", "FHS"})
"""Segments whose fields 1 and 2 are the field separator and the encoding characters."""
ENVELOPE_SEGMENTS = frozenset({"FHS", "FTS", "BHS", "BTS"})

_BOM = "\ufeff"
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_LINE_BREAKS = re.compile(r"\r\n|\n|\r")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+\Z")
_CHARSET_SWITCH = re.compile(r"[CM][0-9A-Fa-f]{4,6}\Z")
_FORMAT_WITH_NUMBER = re.compile(r"\.(sp|in|ti|sk)([+-]?\d*)\Z")


def _is_control(char: str) -> bool:
    return (char < " " and char != "\t") or char == "\x7f"


@dataclass(frozen=True)
class EncodingCharacters:
    """MSH-1 and MSH-2: the delimiters a message declares for itself."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""  # v2.7+: a fifth character in MSH-2; empty when absent

    def __post_init__(self) -> None:
        chars = [self.field, self.component, self.repetition, self.escape, self.subcomponent]
        if self.truncation:
            chars.append(self.truncation)
        for char in chars:
            if len(char) != 1 or char.isalnum() or char == " " or _is_control(char):
                raise ValueError(f"{char!r} cannot be an HL7 delimiter")
        if len(set(chars)) != len(chars):
            raise ValueError("HL7 delimiters must be distinct")

    @property
    def msh2(self) -> str:
        """MSH-2 as written: component, repetition, escape, subcomponent [, truncation]."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    @classmethod
    def from_msh2(cls, field_separator: str, msh2: str) -> EncodingCharacters:
        """Read the delimiters; ValueError when they are not four or five distinct symbols."""
        if len(msh2) not in (4, 5):
            raise ValueError(f"MSH-2 must hold 4 or 5 encoding characters, not {len(msh2)}")
        return cls(field_separator, msh2[0], msh2[1], msh2[2], msh2[3], msh2[4:])


DEFAULT_ENCODING = EncodingCharacters()


# --- escape sequences (2.7) ------------------------------------------------------------------


def escape(text: str, encoding: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """Escape `text` for a leaf: delimiters as \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ (\\P\\), a line feed
    as \\.br\\ and other control characters as \\Xhh\\, so no CR, LF or MLLP byte stays raw."""
    e = encoding.escape
    table = {
        encoding.field: f"{e}F{e}",
        encoding.component: f"{e}S{e}",
        encoding.subcomponent: f"{e}T{e}",
        encoding.repetition: f"{e}R{e}",
        encoding.escape: f"{e}E{e}",
        "\n": f"{e}.br{e}",
    }
    if encoding.truncation:
        table[encoding.truncation] = f"{e}P{e}"
    if not any(char in table or _is_control(char) for char in text):
        return text
    out = []
    for char in text:
        replacement = table.get(char)
        if replacement is None and _is_control(char):
            replacement = f"{e}X{ord(char):02X}{e}"
        out.append(char if replacement is None else replacement)
    return "".join(out)


def unescape(text: str, encoding: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """Decode escape sequences in a leaf; anything not a well-formed sequence stays as written.

    \\H\\ and \\N\\ (highlighting), \\.fi\\ \\.nf\\ \\.ce\\ \\.in\\ \\.ti\\ and the character-set
    switches \\Cxxyy\\ \\Mxxyyzz\\ carry no text and are dropped; \\.br\\ and \\.sp n\\ become line
    feeds, \\.sk n\\ spaces; \\Xhh..\\ is bytes (UTF-8, else Latin-1); \\Z..\\ is kept as written.
    """
    e = encoding.escape
    if e not in text:
        return text
    simple = {
        "F": encoding.field,
        "S": encoding.component,
        "T": encoding.subcomponent,
        "R": encoding.repetition,
        "E": encoding.escape,
        "H": "",
        "N": "",
    }
    if encoding.truncation:
        simple["P"] = encoding.truncation
    out: list[str] = []
    position = 0
    while True:
        start = text.find(e, position)
        if start < 0:
            out.append(text[position:])
            return "".join(out)
        end = text.find(e, start + 1)
        if end < 0:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position:start])
        decoded = _decode_sequence(text[start + 1 : end], simple)
        if decoded is None:
            # Not a sequence: keep the escape character and rescan from just after it, so that
            # a stray one cannot swallow the start of a real sequence that follows.
            out.append(e)
            position = start + 1
        else:
            out.append(decoded)
            position = end + 1


def _decode_sequence(sequence: str, simple: dict[str, str]) -> str | None:
    if sequence in simple:
        return simple[sequence]
    if sequence.startswith("X") and _HEX.match(sequence[1:]):
        raw = bytes.fromhex(sequence[1:])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if _CHARSET_SWITCH.match(sequence):
        return ""
    if sequence in (".br", ".fi", ".nf", ".ce"):
        return "\n" if sequence == ".br" else ""
    numbered = _FORMAT_WITH_NUMBER.match(sequence)
    if numbered:
        command, number = numbered.groups()
        count = abs(int(number)) if number not in ("", "+", "-") else 1
        if command == "sp":
            return "\n" * max(count, 1)
        if command == "sk":
            return " " * count
        return ""
    return None


# --- the tree ---------------------------------------------------------------------------------


_EMPTY_FIELD: Field = ((("",),),)


@dataclass(frozen=True)
class Segment:
    """A segment: its ID and its fields; `fields[n - 1]` is field n (for MSH, MSH-1 is `|`)."""

    name: str
    fields: tuple[Field, ...] = ()

    def field(self, number: int) -> Field:
        """Field `number` (1-based, as HL7 numbers it); empty when the segment stops before."""
        if number < 1 or number > len(self.fields):
            return _EMPTY_FIELD
        return self.fields[number - 1]

    def value(
        self, number: int, component: int = 1, subcomponent: int = 1, repetition: int = 1
    ) -> str:
        """One leaf, unescaped; "" when absent."""
        return leaf(self.field(number), component, subcomponent, repetition)

    def repetitions(self, number: int) -> tuple[Repetition, ...]:
        """The non-empty repetitions of field `number`."""
        return tuple(rep for rep in self.field(number) if not is_empty(rep))


def leaf(field_: Field, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
    """One leaf of a field; "" when absent."""
    if repetition > len(field_):
        return ""
    rep = field_[repetition - 1]
    if component > len(rep):
        return ""
    comp = rep[component - 1]
    return comp[subcomponent - 1] if subcomponent <= len(comp) else ""


def is_empty(node: Field | Repetition | Component | str) -> bool:
    """True when no leaf under `node` holds text."""
    if isinstance(node, str):
        return node == ""
    return all(is_empty(child) for child in node)


@dataclass(frozen=True)
class Message:
    """One HL7 v2 message: MSH first, then the other segments, with its own delimiters."""

    segments: tuple[Segment, ...]
    encoding: EncodingCharacters = field(default=DEFAULT_ENCODING)

    @property
    def header(self) -> MessageHeader:
        """The MSH segment, read."""
        return MessageHeader(self.segments[0], self.encoding)

    def first(self, name: str) -> Segment | None:
        """The first segment with ID `name`."""
        return next((segment for segment in self.segments if segment.name == name), None)

    def named(self, name: str) -> tuple[Segment, ...]:
        """Every segment with ID `name`, in order."""
        return tuple(segment for segment in self.segments if segment.name == name)

    def with_sequence(self) -> Iterator[tuple[Segment, int]]:
        """Each segment with its occurrence number among segments of the same ID (ERL-2)."""
        seen: dict[str, int] = {}
        for segment in self.segments:
            seen[segment.name] = seen.get(segment.name, 0) + 1
            yield segment, seen[segment.name]


@dataclass(frozen=True)
class MessageHeader:
    """MSH read for routing and acknowledgment (2.14.9); fields stay trees for echoing."""

    segment: Segment
    encoding: EncodingCharacters = DEFAULT_ENCODING

    @property
    def sending_application(self) -> Field:
        return self.segment.field(3)

    @property
    def sending_facility(self) -> Field:
        return self.segment.field(4)

    @property
    def receiving_application(self) -> Field:
        return self.segment.field(5)

    @property
    def receiving_facility(self) -> Field:
        return self.segment.field(6)

    @property
    def sent_at(self) -> str:
        """MSH-7 as written."""
        return self.segment.value(7)

    @property
    def message_code(self) -> str:
        """MSH-9.1, e.g. REF."""
        return self.segment.value(9, 1).strip()

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. I12."""
        return self.segment.value(9, 2).strip()

    @property
    def structure(self) -> str:
        """MSH-9.3, e.g. REF_I12 (absent before v2.3.1)."""
        return self.segment.value(9, 3).strip()

    @property
    def control_id(self) -> str:
        """MSH-10, echoed in MSA-2."""
        return self.segment.value(10)

    @property
    def processing_id(self) -> str:
        """MSH-11.1: P production, T training, D debugging."""
        return self.segment.value(11).strip()

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. 2.5.1."""
        return self.segment.value(12).strip()

    @property
    def accept_ack_type(self) -> str:
        """MSH-15 (table 0155): when the sender wants an accept acknowledgment."""
        return self.segment.value(15).strip()

    @property
    def application_ack_type(self) -> str:
        """MSH-16 (table 0155): when the sender wants an application acknowledgment."""
        return self.segment.value(16).strip()


# --- parsing ----------------------------------------------------------------------------------


def normalize_line_endings(text: str) -> str:
    """CR LF and LF become CR, the one segment terminator of ER7."""
    return _LINE_BREAKS.sub("\r", text)


def parse_field(raw: str, encoding: EncodingCharacters = DEFAULT_ENCODING) -> Field:
    """Split one field into repetitions, components and subcomponents, and unescape the leaves."""
    return tuple(
        tuple(
            tuple(unescape(sub, encoding) for sub in component.split(encoding.subcomponent))
            for component in repetition.split(encoding.component)
        )
        for repetition in raw.split(encoding.repetition)
    )


def _read_header_line(line: str, sequence: int = 1) -> tuple[EncodingCharacters, Segment]:
    name = line[:3]
    if len(line) < 4:
        raise Hl7ParseError(name, sequence, 1, f"{name} ends before its field separator")
    separator = line[3]
    rest = line[4:].split(separator)
    try:
        encoding = EncodingCharacters.from_msh2(separator, rest[0])
    except ValueError as error:
        field_number = 1 if separator.isalnum() or separator == " " else 2
        raise Hl7ParseError(name, sequence, field_number, str(error)) from None
    fields: list[Field] = [(((separator,),),), (((rest[0],),),)]
    fields.extend(parse_field(raw, encoding) for raw in rest[1:])
    return encoding, Segment(name, tuple(fields))


def parse_segment(
    line: str, encoding: EncodingCharacters = DEFAULT_ENCODING, sequence: int = 1
) -> Segment:
    """One segment line (no terminator); raises Hl7ParseError when it is not a segment."""
    name = line[:3]
    if name in HEADER_SEGMENTS:
        return _read_header_line(line, sequence)[1]
    if not _SEGMENT_ID.match(name) or (len(line) > 3 and line[3] != encoding.field):
        raise Hl7ParseError(
            name if _SEGMENT_ID.match(name) else "???",
            sequence,
            None,
            "a line does not start with a segment ID and the field separator",
        )
    if len(line) == 3:
        return Segment(name)
    return Segment(
        name, tuple(parse_field(raw, encoding) for raw in line[4:].split(encoding.field))
    )


def header_encoding(segment: Segment) -> EncodingCharacters:
    """The delimiters an MSH, BHS or FHS segment declares in its fields 1 and 2."""
    return EncodingCharacters.from_msh2(segment.value(1), segment.value(2))


def _segment_lines(text: str) -> list[str]:
    text = normalize_line_endings(text.removeprefix(_BOM))
    return [line for line in text.split("\r") if line.strip()]


def parse_message(text: str) -> Message:
    """Parse one message (BOM and any line endings accepted); Hl7ParseError names where it fails."""
    lines = _segment_lines(text)
    if not lines:
        raise Hl7ParseError("MSH", 1, None, "the message is empty")
    first = lines[0]
    if not first.startswith("MSH"):
        name = first[:3] if _SEGMENT_ID.match(first[:3]) else "???"
        raise Hl7ParseError(name, 1, None, f"segment {name} received before the MSH header")
    encoding, header = _read_header_line(first)
    segments = [header]
    seen = {"MSH": 1}
    for line in lines[1:]:
        name = line[:3]
        sequence = seen.get(name, 0) + 1
        seen[name] = sequence
        segment = parse_segment(line, encoding, sequence)
        if segment.name in HEADER_SEGMENTS or segment.name in ENVELOPE_SEGMENTS:
            raise Hl7ParseError(
                segment.name,
                sequence,
                None,
                f"{segment.name} inside a message: read several messages with read_file",
            )
        segments.append(segment)
    return Message(tuple(segments), encoding)


def sniff_header(text: str) -> MessageHeader | None:
    """Best effort: the first MSH line that parses, for acknowledging what cannot be parsed."""
    for line in _segment_lines(text):
        if line.startswith("MSH"):
            try:
                encoding, segment = _read_header_line(line)
            except Hl7ParseError:
                return None
            return MessageHeader(segment, encoding)
    return None


# --- encoding ---------------------------------------------------------------------------------


def encode_field(value: Field, encoding: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """The inverse of parse_field."""
    return encoding.repetition.join(
        encoding.component.join(
            encoding.subcomponent.join(escape(sub, encoding) for sub in component)
            for component in repetition
        )
        for repetition in value
    )


def encode_segment(segment: Segment, encoding: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """One segment line, without its terminator; MSH-1 and MSH-2 come from `encoding`."""
    if segment.name in HEADER_SEGMENTS:
        head = segment.name + encoding.field + encoding.msh2
        rest = segment.fields[2:]
        if not rest:
            return head
        return head + encoding.field + encoding.field.join(encode_field(f, encoding) for f in rest)
    if not segment.fields:
        return segment.name
    return (
        segment.name
        + encoding.field
        + encoding.field.join(encode_field(f, encoding) for f in segment.fields)
    )


def encode_message(message: Message) -> str:
    """The message as ER7 text, each segment terminated by CR."""
    return "".join(encode_segment(s, message.encoding) + "\r" for s in message.segments)


# --- bytes ------------------------------------------------------------------------------------

_CHARSETS = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "BIG-5": "big5",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "ISO IR87": "iso2022_jp",
}


def decode(data: bytes) -> str:
    """Bytes to text: strip a UTF-8 BOM, honour MSH-18 when it names a known single-byte or
    CJK character set, else UTF-8 with a Latin-1 fallback (never fails); line endings become CR."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    codec = _declared_codec(data)
    for candidate in (codec, "utf-8"):
        if candidate is None:
            continue
        try:
            return normalize_line_endings(data.decode(candidate))
        except (UnicodeDecodeError, LookupError):
            continue
    return normalize_line_endings(data.decode("latin-1"))


def _declared_codec(data: bytes) -> str | None:
    if not data.startswith(b"MSH") or len(data) < 4:
        return None
    first_line = re.split(rb"[\r\n]", data, maxsplit=1)[0]
    fields = first_line.split(data[3:4])
    if len(fields) < 18:
        return None
    component, repetition = data[4:5] or b"^", data[5:6] or b"~"
    declared = fields[17].split(repetition)[0].split(component)[0]
    declared = declared.decode("latin-1").strip().upper()
    if declared.startswith("8859/"):
        return "iso8859-" + declared[5:]
    return _CHARSETS.get(declared)


ChunkKind = Literal["message", "envelope", "orphan"]


@dataclass(frozen=True)
class Chunk:
    """A piece of a file: one message, one batch/file envelope segment, or segments before any
    MSH. `raw` is the exact bytes from the input; `line` is where it starts (1-based)."""

    kind: ChunkKind
    raw: bytes
    line: int
    segment: str


_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|\Z)")


def split_batch(data: bytes) -> tuple[Chunk, ...]:
    """Split unframed bytes into messages at each MSH, with FHS/BHS/BTS/FTS as envelope chunks
    and any segments that come before an MSH as orphans (so nothing is silently dropped)."""
    offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    chunks: list[Chunk] = []
    current: tuple[ChunkKind, int, int, int, str] | None = None  # kind, start, end, line, name

    def close() -> None:
        nonlocal current
        if current is not None:
            kind, start, end, line, name = current
            chunks.append(Chunk(kind, data[start:end], line, name))
            current = None

    for number, match in enumerate(_LINE.finditer(data, offset), start=1):
        start, end = match.span()
        if start == end:
            break
        content = match.group().rstrip(b"\r\n")
        if not content.strip():
            continue
        name = content[:3].decode("latin-1")
        if name in ENVELOPE_SEGMENTS:
            close()
            chunks.append(Chunk("envelope", data[start:end], number, name))
        elif name == "MSH":
            close()
            current = ("message", start, end, number, name)
        elif current is None:
            current = ("orphan", start, end, number, name)
        else:
            current = (current[0], current[1], end, current[3], current[4])
    close()
    return tuple(chunks)
