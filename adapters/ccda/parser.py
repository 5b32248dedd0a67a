"""Hardened parsing of untrusted XML documents into an lxml tree, refusing what is unsafe.

Checks, in order, each refused with a `MalformedDocument` whose `reason` is a `Refusal`:
1. size: more than `max_bytes` is refused before any parsing;
2. encoding: a UTF-8 or UTF-16 byte-order mark, or the XML declaration, names the encoding, and
   only UTF-8, UTF-16 (with its BOM), US-ASCII, ISO-8859-1 and windows-1252 are accepted; the
   bytes must be valid in that encoding. Invalid bytes (Windows-1252 bytes in a UTF-8 document)
   are refused naming their byte offset; they are never transcoded, since guessing what the
   sender meant would alter a clinical record silently;
3. DOCTYPE: a document type declaration in the prolog is refused before the parser sees it, so
   no DTD, internal or external entity or parameter entity is ever read (XXE, billion laughs,
   quadratic blowup);
4. the parse itself, with a fresh parser per document: resolve_entities=False, no_network=True,
   load_dtd=False, huge_tree=False (libxml2's depth limit of 256 and text node limit of 10 MB
   stay on), a resolver that refuses everything, never `recover`; undeclared namespace prefixes,
   invalid namespace URIs, undefined entities and unclosed tags are refused;
5. depth below `max_depth` (libxml2 stops at 256 whatever the caller asks), and no XInclude
   elements (never processed, and refused so a sender learns they are not).

Processing instructions (xml-stylesheet with a remote href included) and comments are dropped
by the parser, so a document carrying one is read and the instruction ignored; nothing is ever
fetched. Requires lxml 6.1.3 or later, as the project pins (6.1.0 fixed CVE-2026-41066, XXE
through parsers that still defaulted to resolving entities).
"""

import re
from enum import StrEnum
from typing import Any, Final, NoReturn

from lxml import etree

from adapters.errors import MalformedDocument

MINIMUM_LXML: Final = (6, 1, 3)
if etree.LXML_VERSION[:3] < MINIMUM_LXML:  # pragma: no cover - the environment pins lxml
    raise ImportError(f"adapters.ccda needs lxml >= 6.1.3, found {etree.__version__}")

_LIBXML2_MAX_DEPTH: Final = 256
_DETAIL_LIMIT: Final = 160


class Refusal(StrEnum):
    """Why a document was refused; the value is the sentence `MalformedDocument.reason` holds."""

    TOO_LARGE = "the document is larger than the size limit"
    EMPTY = "the document is empty"
    UNSUPPORTED_ENCODING = "the document's character encoding is not accepted"
    INVALID_ENCODING = "the document has bytes that are invalid in its character encoding"
    DOCTYPE = "DOCTYPE declarations are refused: no DTD or entity declaration is read"
    UNDEFINED_ENTITY = "the document refers to an entity that is not defined"
    EXTERNAL_RESOURCE = "the document asks for an external resource, which is never loaded"
    UNDECLARED_PREFIX = "the document uses a namespace prefix it does not declare"
    INVALID_NAMESPACE = "the document declares an invalid namespace"
    NOT_WELL_FORMED = "the document is not well-formed XML"
    TOO_DEEP = "the document is nested deeper than the depth limit"
    RESOURCE_LIMIT = "the document exceeds a parser resource limit"
    XINCLUDE = "XInclude elements are refused: nothing is included"
    NOT_CLINICAL_DOCUMENT = "the root element is not an HL7 v3 ClinicalDocument"


# Encoding names accepted in the XML declaration (lower case), to their IANA name, and the
# Python codec that checks the bytes.
_ENCODINGS: Final = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-16": "utf-16",
    "us-ascii": "us-ascii",
    "iso-8859-1": "iso-8859-1",
    "windows-1252": "windows-1252",
}
_CODECS: Final = {
    "utf-8": "utf-8",
    "utf-16": "utf-16",
    "us-ascii": "ascii",
    "iso-8859-1": "latin-1",
    "windows-1252": "cp1252",
}
_XML_DECLARATION: Final = re.compile(
    r"""<\?xml\s+version\s*=\s*(?:"[^"]*"|'[^']*')\s*(?:encoding\s*=\s*(?:"([^"]*)"|'([^']*)'))?"""
)
_XINCLUDE_TAGS: Final = ("{http://www.w3.org/2001/XInclude}*", "{http://www.w3.org/2003/XInclude}*")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_UTF32_BOMS: Final = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")

_NAMESPACE_ERRORS: Final = frozenset(
    {
        etree.ErrorTypes.WAR_NS_URI,
        etree.ErrorTypes.WAR_NS_URI_RELATIVE,
        etree.ErrorTypes.NS_ERR_XML_NAMESPACE,
        etree.ErrorTypes.NS_ERR_QNAME,
        etree.ErrorTypes.NS_ERR_ATTRIBUTE_REDEFINED,
        etree.ErrorTypes.NS_ERR_EMPTY,
        etree.ErrorTypes.NS_ERR_COLON,
        etree.ErrorTypes.WAR_NS_COLUMN,
    }
)
_ENTITY_ERRORS: Final = frozenset(
    {
        etree.ErrorTypes.ERR_UNDECLARED_ENTITY,
        etree.ErrorTypes.WAR_UNDECLARED_ENTITY,
        etree.ErrorTypes.ERR_UNPARSED_ENTITY,
        etree.ErrorTypes.ERR_ENTITY_IS_EXTERNAL,
        etree.ErrorTypes.ERR_ENTITY_IS_PARAMETER,
    }
)
_ENCODING_ERRORS: Final = frozenset(
    {
        etree.ErrorTypes.ERR_INVALID_ENCODING,
        etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
        etree.ErrorTypes.ERR_UNKNOWN_ENCODING,
        etree.ErrorTypes.WAR_ENCODING_MISMATCH,
    }
)


class _DenyAll(etree.Resolver):
    """Refuses every DTD, entity and XInclude the parser asks for, whatever its URL."""

    def resolve(self, system_url: str, public_id: str, context: object = None) -> NoReturn:
        raise MalformedDocument(Refusal.EXTERNAL_RESOURCE, detail=_cut(system_url or public_id))


def parse_untrusted(raw: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """The root element of an untrusted XML document, or MalformedDocument saying why not."""
    if len(raw) > max_bytes:
        raise MalformedDocument(
            Refusal.TOO_LARGE, detail=f"{len(raw)} bytes, the limit is {max_bytes}"
        )
    if not raw or raw.isspace():
        raise MalformedDocument(Refusal.EMPTY)
    text = _decode(raw)
    _refuse_doctype(text)
    parser = _hardened_parser()
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as error:
        _refuse_syntax(error)
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs 0.5 lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # Refused by the prolog scan before parsing; kept in case that scan is ever wrong.
        raise MalformedDocument(Refusal.DOCTYPE)  # pragma: no cover
    if max_depth < _LIBXML2_MAX_DEPTH and root.xpath(f"boolean({'/*' * (max_depth + 1)})"):
        raise MalformedDocument(Refusal.TOO_DEEP, detail=f"the limit is {max_depth}")
    xinclude = next(root.iter(*_XINCLUDE_TAGS), None)
    if xinclude is not None:
        raise MalformedDocument(Refusal.XINCLUDE, location=f"line {xinclude.sourceline}")
    return root


def _hardened_parser() -> etree.XMLParser:
    """A fresh parser for one document; collect_ids stays on (its default)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        recover=False,
        remove_comments=True,
        remove_pis=True,
    )
    parser.resolvers.add(_DenyAll())
    return parser


def _decode(raw: bytes) -> str:
    """The document's text, decoded strictly in the encoding it names, or MalformedDocument."""
    if raw.startswith(_UTF32_BOMS):
        raise MalformedDocument(Refusal.UNSUPPORTED_ENCODING, detail="UTF-32")
    if raw.startswith(_UTF16_BOMS):
        encoding, source = "utf-16", "its byte-order mark"
    elif raw.startswith(_UTF8_BOM):
        encoding, source = "utf-8", "its byte-order mark"
    elif raw[:1] == b"\x00" or raw[1:2] == b"\x00":
        raise MalformedDocument(
            Refusal.UNSUPPORTED_ENCODING, detail="UTF-16 or UTF-32 without a byte-order mark"
        )
    else:
        encoding, source = "utf-8", "the XML default"
    # The declaration is ASCII in every accepted encoding, so its first bytes can be read first.
    head = raw[:200].decode(encoding, errors="replace").lstrip("\ufeff")
    match = _XML_DECLARATION.match(head)
    declared = (match.group(1) or match.group(2)) if match else None
    if declared is not None:
        named = _ENCODINGS.get(declared.lower())
        if named is None:
            raise MalformedDocument(Refusal.UNSUPPORTED_ENCODING, detail=_cut(declared))
        if named != encoding and source != "the XML default":
            raise MalformedDocument(
                Refusal.UNSUPPORTED_ENCODING,
                detail=f"{_cut(declared)} is declared but {source} says {encoding.upper()}",
            )
        if named == "utf-16" and source == "the XML default":
            raise MalformedDocument(
                Refusal.UNSUPPORTED_ENCODING, detail="UTF-16 is declared without a byte-order mark"
            )
        encoding, source = named, "its XML declaration"
    try:
        return raw.decode(_CODECS[encoding])
    except UnicodeDecodeError as error:
        offset = error.start
        line = raw.count(b"\n", 0, offset) + 1
        bad = " ".join(f"0x{byte:02X}" for byte in raw[offset : min(error.end, offset + 4)])
        raise MalformedDocument(
            Refusal.INVALID_ENCODING,
            location=f"byte offset {offset}, line {line}",
            detail=f"{bad} is not valid {encoding.upper()} (the encoding named by {source})",
        ) from None


def _refuse_doctype(text: str) -> None:
    """Refuses a DOCTYPE in the prolog (XMLDecl? Misc* doctypedecl?): comments, PIs and white
    space are skipped; anything else ends the prolog and is left to the parser."""
    position = 1 if text.startswith("\ufeff") else 0
    length = len(text)
    while position < length:
        if text[position] in " \t\r\n":
            position += 1
        elif text.startswith("<?", position):
            end = text.find("?>", position + 2)
            if end < 0:
                return
            position = end + 2
        elif text.startswith("<!--", position):
            end = text.find("-->", position + 4)
            if end < 0:
                return
            position = end + 3
        elif text.startswith("<!DOCTYPE", position):
            line = text.count("\n", 0, position) + 1
            raise MalformedDocument(Refusal.DOCTYPE, location=f"line {line}")
        else:
            return


def _refuse_syntax(error: etree.XMLSyntaxError) -> NoReturn:
    line, column = error.position
    location = f"line {line}, column {column}"
    detail = _cut(error.msg.rsplit(", line ", 1)[0])
    code: int | None = getattr(error, "code", None)  # lxml-stubs 0.5 lacks ParseError.code
    reason = Refusal.NOT_WELL_FORMED
    if code == etree.ErrorTypes.NS_ERR_UNDEFINED_NAMESPACE:
        reason = Refusal.UNDECLARED_PREFIX
    elif code in _NAMESPACE_ERRORS:
        reason = Refusal.INVALID_NAMESPACE
    elif code in _ENTITY_ERRORS:
        reason = Refusal.UNDEFINED_ENTITY
    elif code in _ENCODING_ERRORS:
        reason = Refusal.INVALID_ENCODING
    elif code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        reason = Refusal.TOO_DEEP if "depth" in error.msg else Refusal.RESOURCE_LIMIT
    raise MalformedDocument(reason, location=location, detail=detail) from None


def _cut(text: str) -> str:
    """Parser messages and names quoted back, cut short and on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_LIMIT else flat[: _DETAIL_LIMIT - 1] + "…"
