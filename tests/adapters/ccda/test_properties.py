"""Properties of the reader over generated input: it never fails but with MalformedDocument,
never alters text, and reads confidentiality and labels by their codes alone."""

import re
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.ccda import CcdaDocument, Confidentiality, Refusal, read_document
from adapters.ccda.templates import LABEL_SPELLINGS, label_kind
from adapters.errors import MalformedDocument

DOCUMENT = (
    '<ClinicalDocument xmlns="urn:hl7-org:v3" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<templateId root="2.16.840.1.113883.10.20.22.1.13"/>'
    '<code code="18761-7" codeSystem="2.16.840.1.113883.6.1"/><title>{title}</title>'
    '<confidentialityCode code="{confidentiality}" codeSystem="2.16.840.1.113883.5.25"/>'
    "<recordTarget><patientRole><patient><name><given>Ada</given></name></patient>"
    "</patientRole></recordTarget><component><structuredBody><component><section>"
    '<templateId root="2.16.840.1.113883.3.3251.1.5"/><code code="57017-6"/>'
    '<entry><observation classCode="OBS" moodCode="EVN">'
    '<templateId root="2.16.840.1.113883.3.445.21"/><code code="SECCONOBS"/>'
    '<value xsi:type="CE" code="{label}" codeSystem="2.16.840.1.113883.5.4"/></observation></entry>'
    '<entry><substanceAdministration classCode="SBADM" moodCode="EVN"><doseQuantity value="1"/>'
    "</substanceAdministration></entry></section></component></structuredBody></component>"
    "</ClinicalDocument>"
)
SEED = DOCUMENT.format(title="Transfer", confidentiality="N", label="NORDSCLCD").encode()
XML_SPACE = re.compile(r"[ \t\r\n]+")
# Characters XML 1.0 allows in content (no C0 controls but tab/newline, no surrogates,
# no U+FFFE/U+FFFF).
XML_TEXT = st.text(
    st.characters(
        exclude_categories=("Cs", "Cc"),
        exclude_characters="\ufffe\uffff",
        include_characters="\t\n",
    )
)
CODE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='<&"'))


def read_or_refuse(raw: bytes) -> CcdaDocument | MalformedDocument:
    """The document, or the refusal: any other exception fails the test."""
    try:
        return read_document(raw)
    except MalformedDocument as refused:
        return refused


def is_read_or_refused_with_a_reason(outcome: CcdaDocument | MalformedDocument) -> bool:
    return isinstance(outcome, CcdaDocument) or isinstance(outcome.reason, Refusal)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
@example(b"\xef\xbb\xbf")
@example(b"\xff\xfe<\x00")
@example(b"<?xml version='1.0' encoding='")
def test_arbitrary_bytes_are_read_or_refused(raw: bytes) -> None:
    outcome = read_or_refuse(raw)
    assert is_read_or_refused_with_a_reason(outcome)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_documents_are_read_or_refused(data: st.DataObject) -> None:
    raw = bytearray(SEED)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = data.draw(st.integers(0, 255))
        if action == "replace":
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        elif action == "delete" and len(raw) > 1:
            del raw[position]
        elif action == "truncate":
            del raw[position:]
            break
    outcome = read_or_refuse(bytes(raw))
    assert is_read_or_refused_with_a_reason(outcome)


@settings(deadline=None)
@given(XML_TEXT, st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_text_is_read_as_written(title: str, encoding: str) -> None:
    raw = DOCUMENT.format(title=escape(title), confidentiality="N", label="X").encode(encoding)
    expected = XML_SPACE.sub(" ", title.replace("\r", "\n")).strip(" ") or None
    assert read_document(raw).title == expected


@settings(deadline=None)
@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.data(),
)
def test_invalid_utf8_is_refused_at_its_byte_offset(title: str, data: st.DataObject) -> None:
    head, _, tail = (
        DOCUMENT.format(title="\x00", confidentiality="N", label="X").encode().partition(b"\x00")
    )
    text = escape(title).encode()
    cut = data.draw(st.integers(0, len(text)))
    bad = data.draw(st.sampled_from([b"\x80", b"\x96", b"\xbf", b"\xc0", b"\xe2\x28", b"\xff"]))
    raw = head + text[:cut] + bad + text[cut:] + tail
    outcome = read_or_refuse(raw)
    assert isinstance(outcome, MalformedDocument)
    assert outcome.reason is Refusal.INVALID_ENCODING
    assert outcome.location == f"byte offset {len(head) + cut}, line 1"


@given(CODE)
@example("N")
@example("R")
@example("V")
def test_confidentiality_is_taken_at_its_word_only_for_n_r_v(code: str) -> None:
    document = read_document(
        DOCUMENT.format(title="t", confidentiality=escape(code), label="X").encode()
    )
    if code in ("N", "R", "V"):
        assert document.confidentiality.value == code
    else:
        assert document.confidentiality is Confidentiality.RESTRICTED_UNKNOWN


@given(CODE.filter(bool))
@example("NORDSLCD")
@example("NORDSCLCD")
@example("ETH")
def test_labels_are_classified_by_their_code_alone(code: str) -> None:
    document = read_document(
        DOCUMENT.format(title="t", confidentiality="N", label=escape(code)).encode()
    )
    label = document.security_labels[-1]
    assert label.written.code == code
    assert label.code == LABEL_SPELLINGS.get(code, code)
    assert label.kind is label_kind(label.code)
