"""ER7 parsing and encoding: delimiters from MSH, escapes, line endings, batches; properties."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.hl7v2.er7 import (
    DEFAULT_ENCODING,
    EncodingCharacters,
    Field,
    Message,
    Segment,
    decode,
    encode_message,
    escape,
    parse_field,
    parse_message,
    sniff_header,
    split_batch,
    unescape,
)
from adapters.hl7v2.errors import ErrorCode, Hl7ParseError

from . import REFERRAL, REFERRAL_SEGMENTS, message

SEGMENT_NAMES = [line[:3] for line in REFERRAL_SEGMENTS]


class TestLineEndings:
    @pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
    def test_each_line_ending_reads_the_real_segments(self, terminator: str) -> None:
        parsed = parse_message(decode(message(*REFERRAL_SEGMENTS, terminator=terminator)))
        assert [s.name for s in parsed.segments] == SEGMENT_NAMES

    def test_an_lf_message_is_not_one_long_segment(self) -> None:
        parsed = parse_message(decode(message(*REFERRAL_SEGMENTS, terminator="\n")))
        msh = parsed.segments[0]
        assert msh.value(12) == "2.5.1"
        assert msh.value(18) == "UNICODE UTF-8"  # MSH ends here, not at the end of the file
        assert len(parsed.segments) == len(REFERRAL_SEGMENTS)

    def test_a_byte_order_mark_is_stripped(self) -> None:
        parsed = parse_message(decode(b"\xef\xbb\xbf" + REFERRAL))
        assert parsed.segments[0].name == "MSH"

    def test_blank_lines_are_not_segments(self) -> None:
        parsed = parse_message(decode(b"\n" + REFERRAL.replace(b"\r", b"\r\n\r\n") + b"\n\n"))
        assert [s.name for s in parsed.segments] == SEGMENT_NAMES

    def test_latin1_text_declared_in_msh18_is_decoded_as_latin1(self) -> None:
        raw = "MSH|^~\\&|A|B|C|D|20240101||ADT^A03|1|P|2.5.1||||||8859/1\rPID|1||X||Müller\r"
        parsed = parse_message(decode(raw.encode("latin-1")))
        assert parsed.segments[1].value(5) == "Müller"

    def test_undeclared_non_utf8_falls_back_to_latin1(self) -> None:
        raw = "MSH|^~\\&|A|B|C|D|20240101||ADT^A03|1|P|2.5.1\rPID|1||X||Müller\r"
        assert parse_message(decode(raw.encode("latin-1"))).segments[1].value(5) == "Müller"


class TestStructure:
    def test_fields_repetitions_components_subcomponents(self) -> None:
        pid = parse_message(decode(REFERRAL)).first("PID")
        assert pid is not None
        assert pid.value(3) == "MRN-555"
        assert pid.value(3, 4, 2) == "2.16.840.1.113883.3.1234"
        assert pid.value(3, 1, repetition=2) == "123-45-6789"
        assert pid.value(3, 5, repetition=2) == "SS"
        assert pid.value(5) == "O'Brien&Sons"  # \T\
        assert pid.value(11) == "77 Lake St~Apt 2"  # \R\
        assert pid.value(99) == ""
        assert len(pid.repetitions(5)) == 2

    def test_msh_1_and_msh_2_are_the_delimiters(self) -> None:
        msh = parse_message(decode(REFERRAL)).segments[0]
        assert msh.value(1) == "|"
        assert msh.value(2) == "^~\\&"
        assert msh.value(9, 2) == "I12"

    def test_delimiters_are_taken_from_the_message(self) -> None:
        raw = "MSH#*!$%#APP#FAC#####REF*I12#C1#P#2.5.1\rPID#1##ID*** A%B%C#\rNTE###a!b$F$c\r"
        parsed = parse_message(raw)
        assert parsed.encoding == EncodingCharacters("#", "*", "!", "$", "%")
        pid = parsed.segments[1]
        assert pid.value(3, 1) == "ID"
        assert pid.value(3, 4, 3) == "C"
        assert parsed.segments[2].field(3) == ((("a",),), (("b#c",),))
        assert parsed.header.message_code == "REF"
        assert parse_message(encode_message(parsed)) == parsed
        assert encode_message(parsed) == raw

    def test_a_fifth_encoding_character_is_truncation(self) -> None:
        parsed = parse_message("MSH|^~\\&#|A\rNTE|||x\\P\\y\r")
        assert parsed.encoding.truncation == "#"
        assert parsed.segments[1].value(3) == "x#y"

    def test_a_segment_without_fields_and_one_with_an_empty_field_differ(self) -> None:
        parsed = parse_message("MSH|^~\\&|A\rZPI\rZPJ|\r")
        assert parsed.segments[1] == Segment("ZPI")
        assert parsed.segments[2] == Segment("ZPJ", (((("",),),),))

    def test_sequence_numbers_count_each_segment_id(self) -> None:
        parsed = parse_message(decode(REFERRAL))
        numbered = [(s.name, n) for s, n in parsed.with_sequence() if s.name in ("PRD", "NTE")]
        assert numbered == [("PRD", 1), ("PRD", 2), ("NTE", 1), ("NTE", 2)]


class TestParseErrors:
    @pytest.mark.parametrize(
        ("text", "segment", "sequence", "field"),
        [
            ("", "MSH", 1, None),
            ("PID|1||X\r", "PID", 1, None),
            ("MSH\r", "MSH", 1, 1),
            ("MSH|^~\r", "MSH", 1, 2),
            ("MSH|^^\\&|A\r", "MSH", 1, 2),
            ("MSH|^~\\&|A\rPID|1\rpid|2\r", "???", 1, None),
            ("MSH|^~\\&|A\rPID|1\rNTE-x\r", "NTE", 1, None),
            ("MSH|^~\\&|A\rNTE|1\rNTE|2\rNTE^3\r", "NTE", 3, None),
            ("MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r", "MSH", 2, None),
            ("MSH|^~\\&|A\rBTS|1\r", "BTS", 1, None),
        ],
    )
    def test_the_error_names_segment_sequence_and_field(
        self, text: str, segment: str, sequence: int, field: int | None
    ) -> None:
        with pytest.raises(Hl7ParseError) as caught:
            parse_message(text)
        assert (caught.value.segment, caught.value.sequence, caught.value.field) == (
            segment,
            sequence,
            field,
        )
        assert caught.value.code is ErrorCode.SEGMENT_SEQUENCE_ERROR
        assert caught.value.problem.location.segment == segment

    def test_sniff_header_reads_the_msh_of_a_broken_message(self) -> None:
        header = sniff_header("MSH|^~\\&|A|B|C|D|t||REF^I12|CTRL-9|P|2.5.1\rbroken line\r")
        assert header is not None
        assert header.control_id == "CTRL-9"
        assert sniff_header("PID|1\r") is None


class TestEscapes:
    @pytest.mark.parametrize(
        ("escaped", "text"),
        [
            ("\\F\\", "|"),
            ("\\S\\", "^"),
            ("\\T\\", "&"),
            ("\\R\\", "~"),
            ("\\E\\", "\\"),
            ("a\\.br\\b", "a\nb"),
            ("a\\.sp2\\b", "a\n\nb"),
            ("a\\.sk3\\b", "a   b"),
            ("\\.fi\\\\.nf\\\\.in+4\\\\.ti-2\\\\.ce\\x", "x"),
            ("\\H\\bold\\N\\", "bold"),
            ("\\X41\\\\X0D\\", "A\r"),
            ("\\XC3A9\\", "é"),
            ("\\XE9\\", "é"),  # not UTF-8: read as Latin-1
            ("\\C2842\\x\\M2442\\", "x"),
            ("\\Zlocal\\", "\\Zlocal\\"),  # locally defined: kept as written
            ("\\X4\\", "\\X4\\"),  # odd hex: not a sequence
            ("50\\% off \\", "50\\% off \\"),  # stray escape characters stay
            ("a\\b\\F\\c", "a\\b|c"),  # a stray one does not swallow a real sequence
        ],
    )
    def test_unescape(self, escaped: str, text: str) -> None:
        assert unescape(escaped) == text

    def test_escape_writes_delimiters_line_breaks_and_controls(self) -> None:
        assert escape("a|b^c&d~e\\f\ng\rh\x0bi\x1cj\tk") == (
            "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X0D\\h\\X0B\\i\\X1C\\j\tk"
        )

    def test_escape_uses_the_message_delimiters(self) -> None:
        encoding = EncodingCharacters("#", "*", "!", "$", "%")
        assert escape("#*!$%|^", encoding) == "$F$$S$$R$$E$$T$|^"
        assert unescape("$F$$S$$R$$E$$T$\\F\\", encoding) == "#*!$%\\F\\"


# --- properties -------------------------------------------------------------------------------

DELIMITER_CHARS = "|^~\\&#!$%*@"


@st.composite
def encodings(draw: st.DrawFn) -> EncodingCharacters:
    chars = draw(st.permutations(DELIMITER_CHARS))
    truncation = chars[5] if draw(st.booleans()) else ""
    return EncodingCharacters(chars[0], chars[1], chars[2], chars[3], chars[4], truncation)


any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(DELIMITER_CHARS + "\r\n\x0b\x1c\t .X"), st.characters(codec="utf-8")
    ),
    max_size=40,
)


@st.composite
def canonical_escaped(draw: st.DrawFn, encoding: EncodingCharacters) -> str:
    """Text as escape() writes it: plain characters and the sequences it emits."""
    e = encoding.escape
    delimiters = set(encoding.msh2 + encoding.field)
    plain = st.characters(exclude_characters=sorted(delimiters), exclude_categories=("Cc", "Cs"))
    tokens = [plain, st.sampled_from([f"{e}{c}{e}" for c in "FSTRE"] + [f"{e}.br{e}"])]
    if encoding.truncation:
        tokens.append(st.just(f"{e}P{e}"))
    return "".join(draw(st.lists(st.one_of(*tokens), max_size=30)))


class TestEscapeProperties:
    @given(any_text, encodings())
    def test_unescape_inverts_escape(self, text: str, encoding: EncodingCharacters) -> None:
        escaped = escape(text, encoding)
        assert unescape(escaped, encoding) == text
        assert "\r" not in escaped
        assert "\n" not in escaped
        delimiters = encoding.field + encoding.component + encoding.repetition
        assert not set(escaped) & set(delimiters + encoding.subcomponent)

    @given(st.data(), encodings())
    def test_escape_inverts_unescape_on_escaped_text(
        self, data: st.DataObject, encoding: EncodingCharacters
    ) -> None:
        escaped = data.draw(canonical_escaped(encoding))
        assert escape(unescape(escaped, encoding), encoding) == escaped

    @given(any_text)
    def test_default_delimiters(self, text: str) -> None:
        assert unescape(escape(text)) == text
        assert escape(unescape(escape(text))) == escape(text)


def fields(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[Field]:
    component = st.lists(leaves, min_size=1, max_size=3).map(tuple)
    repetition = st.lists(component, min_size=1, max_size=3).map(tuple)
    return st.lists(repetition, min_size=1, max_size=3).map(tuple)


segment_ids = st.from_regex(r"\A[A-Z][A-Z0-9]{2}\Z").filter(
    lambda name: name not in ("MSH", "BHS", "FHS", "BTS", "FTS")
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    encoding = draw(encodings())
    field_values = fields(any_text)
    msh_rest = draw(st.lists(field_values, max_size=12))
    msh = Segment("MSH", ((((encoding.field,),),), (((encoding.msh2,),),), *msh_rest))
    others = draw(
        st.lists(
            st.builds(Segment, segment_ids, st.lists(field_values, max_size=6).map(tuple)),
            max_size=6,
        )
    )
    return Message((msh, *others), encoding)


class TestRoundTrip:
    @given(messages())
    def test_parse_inverts_encode(self, generated: Message) -> None:
        assert parse_message(encode_message(generated)) == generated

    @given(messages())
    def test_through_bytes_with_lf_endings(self, generated: Message) -> None:
        data = encode_message(generated).replace("\r", "\n").encode("utf-8")
        assert parse_message(decode(data)) == generated

    @given(fields(any_text))
    def test_field_round_trip(self, value: Field) -> None:
        from adapters.hl7v2.er7 import encode_field

        assert parse_field(encode_field(value, DEFAULT_ENCODING)) == value

    def test_every_corpus_like_sample_round_trips_byte_for_byte(self) -> None:
        assert encode_message(parse_message(decode(REFERRAL))).encode() == REFERRAL


class TestSplitBatch:
    def test_messages_envelopes_and_orphans_keep_their_exact_bytes(self) -> None:
        data = (
            b"FHS|^~\\&|A\r\nBHS|^~\\&|A\r\nEVN|A03\r\nMSH|^~\\&|A|B\r\nPID|1\r\n\r\n"
            b"MSH|^~\\&|C|D\nPID|2\nBTS|2\rFTS|1"
        )
        chunks = split_batch(data)
        assert [(c.kind, c.segment, c.line) for c in chunks] == [
            ("envelope", "FHS", 1),
            ("envelope", "BHS", 2),
            ("orphan", "EVN", 3),
            ("message", "MSH", 4),
            ("message", "MSH", 7),
            ("envelope", "BTS", 9),
            ("envelope", "FTS", 10),
        ]
        assert chunks[3].raw == b"MSH|^~\\&|A|B\r\nPID|1\r\n"
        assert chunks[4].raw == b"MSH|^~\\&|C|D\nPID|2\n"
        assert b"".join(c.raw for c in chunks) == data.replace(b"\r\n\r\n", b"\r\n")

    def test_a_bom_before_the_first_segment(self) -> None:
        chunks = split_batch(b"\xef\xbb\xbf" + REFERRAL)
        assert [c.kind for c in chunks] == ["message"]
        assert chunks[0].raw == REFERRAL

    @given(st.lists(st.sampled_from(["\r", "\n", "\r\n"]), min_size=1))
    def test_several_messages_split_at_each_msh(self, terminators: list[str]) -> None:
        data = b"".join(
            message(*REFERRAL_SEGMENTS, terminator=terminator) for terminator in terminators
        )
        chunks = split_batch(data)
        assert [c.kind for c in chunks] == ["message"] * len(terminators)
        assert all(
            [s.name for s in parse_message(decode(c.raw)).segments] == SEGMENT_NAMES for c in chunks
        )


def test_printable_ascii_is_never_escaped_except_delimiters() -> None:
    plain = "".join(c for c in string.printable if c not in "|^~\\&\r\n\x0b\x0c")
    assert escape(plain) == plain
