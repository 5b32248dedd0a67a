"""Hardened parsing: hostile XML is refused naming why, and nothing is ever fetched.

Fetch attempts are caught by a real listener on loopback that records every connection.
"""

import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.ccda import CcdaDocument, Refusal, read_document
from adapters.errors import MalformedDocument

HEADER = (
    '<templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>'
    '<templateId root="2.16.840.1.113883.10.20.22.1.14" extension="2015-08-01"/>'
    '<id root="2.16.840.1.113883.19.5" extension="doc-1"/>'
    '<code code="57133-1" codeSystem="2.16.840.1.113883.6.1"/>'
    "<title>{title}</title>"
    '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
    "<recordTarget><patientRole><patient><name><given>Ada</given><family>Lovelace</family>"
    "</name></patient></patientRole></recordTarget>"
)


def document(
    body: str = "", *, prolog: str = "", title: str = "Referral", attributes: str = ""
) -> str:
    """A minimal C-CDA Referral Note as text, with what a test needs around and inside it."""
    return (
        f'{prolog}<ClinicalDocument xmlns="urn:hl7-org:v3" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"{attributes}>'
        f"{HEADER.format(title=title)}{body}</ClinicalDocument>"
    )


def refusal(raw: bytes, **limits: int) -> MalformedDocument:
    with pytest.raises(MalformedDocument) as refused:
        read_document(raw, **limits)
    return refused.value


@dataclass
class Listener:
    """A loopback HTTP server that records every connection made to it."""

    url: str
    connections: list[Any] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    listener: Listener

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.listener.connections.append(client_address)
        return True


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'<!ENTITY leak "fetched">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.listener = Listener(f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.listener
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_listener_records_a_fetch(listener: Listener) -> None:
    with urllib.request.urlopen(f"{listener.url}/probe") as response:  # noqa: S310 - loopback
        assert response.status == 200
    assert len(listener.connections) == 1


def test_an_unhardened_parser_would_leak_the_file_this_one_refuses(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t", encoding="utf-8")
    prolog = f'<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
    raw = document(prolog=prolog, title="&xxe;").encode()
    careless = etree.XMLParser(resolve_entities=True, load_dtd=True)
    assert b"s3cr3t" in etree.tostring(etree.fromstring(raw, careless))
    refused = refusal(raw)
    assert refused.reason is Refusal.DOCTYPE
    assert "s3cr3t" not in str(refused)


def test_the_minimal_document_is_read() -> None:
    read = read_document(document().encode())
    assert read.title == "Referral"
    assert read.patient is not None
    assert read.patient.names[0].full() == "Ada Lovelace"


class TestEntitiesAndDtds:
    def test_xxe_to_a_local_file_is_refused(self) -> None:
        raw = document(
            "<component><structuredBody/></component>",
            prolog='<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            title="&xxe;",
        ).encode()
        refused = refusal(raw)
        assert refused.reason is Refusal.DOCTYPE
        assert "root:" not in str(refused)

    def test_xxe_over_http_is_refused_without_connecting(self, listener: Listener) -> None:
        raw = document(
            prolog=f'<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "{listener.url}/x">]>',
            title="&xxe;",
        ).encode()
        assert refusal(raw).reason is Refusal.DOCTYPE
        assert listener.connections == []

    @pytest.mark.parametrize("kind", ["SYSTEM", 'PUBLIC "-//HL7//DTD CDA//EN"'])
    def test_external_dtd_is_refused_without_connecting(
        self, listener: Listener, kind: str
    ) -> None:
        raw = document(prolog=f'<!DOCTYPE ClinicalDocument {kind} "{listener.url}/cda.dtd">')
        assert refusal(raw.encode()).reason is Refusal.DOCTYPE
        assert listener.connections == []

    def test_parameter_entities_are_refused_without_connecting(self, listener: Listener) -> None:
        prolog = (
            "<!DOCTYPE ClinicalDocument ["
            f'<!ENTITY % remote SYSTEM "{listener.url}/evil.dtd"> %remote;'
            "<!ENTITY % inner \"<!ENTITY leak SYSTEM 'file:///etc/hostname'>\"> %inner;"
            "]>"
        )
        assert refusal(document(prolog=prolog, title="&leak;").encode()).reason is (Refusal.DOCTYPE)
        assert listener.connections == []

    def test_billion_laughs_is_refused_at_once(self) -> None:
        entities = '<!ENTITY lol0 "lol">' + "".join(
            f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
        )
        raw = document(prolog=f"<!DOCTYPE ClinicalDocument [{entities}]>", title="&lol9;").encode()
        started = time.perf_counter()
        assert refusal(raw).reason is Refusal.DOCTYPE
        assert time.perf_counter() - started < 0.5

    def test_quadratic_blowup_is_refused(self) -> None:
        big = "x" * 50_000
        raw = document(
            prolog=f'<!DOCTYPE ClinicalDocument [<!ENTITY big "{big}">]>',
            title="&big;" * 20_000,
        ).encode()
        started = time.perf_counter()
        assert refusal(raw).reason is Refusal.DOCTYPE
        assert time.perf_counter() - started < 0.5

    def test_doctype_behind_comments_and_instructions_is_refused(self) -> None:
        prolog = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<!-- a <!DOCTYPE in a comment -->\n'
            "<?xml-stylesheet href='a.xsl'?>\n<!DOCTYPE ClinicalDocument>\n"
        )
        refused = refusal(document(prolog=prolog).encode())
        assert (refused.reason, refused.location) == (Refusal.DOCTYPE, "line 4")

    def test_doctype_in_utf16_is_refused(self) -> None:
        raw = document(prolog='<!DOCTYPE ClinicalDocument [<!ENTITY x "y">]>').encode("utf-16")
        assert refusal(raw).reason is Refusal.DOCTYPE

    def test_a_comment_mentioning_doctype_is_not_a_doctype(self) -> None:
        read = read_document(document(prolog="<!-- <!DOCTYPE x> -->").encode())
        assert read.title == "Referral"

    def test_an_undefined_entity_is_refused(self) -> None:
        refused = refusal(document(title="&nbsp;&xxe;").encode())
        assert refused.reason is Refusal.UNDEFINED_ENTITY
        assert "nbsp" in str(refused)

    def test_predefined_and_character_references_are_read(self) -> None:
        read = read_document(document(title="a &amp; b &lt; c &#8211; d &#x2014; e").encode())
        assert read.title == "a & b < c \u2013 d \u2014 e"


class TestFetching:
    def test_xinclude_is_refused_and_never_processed(self, listener: Listener) -> None:
        body = (
            '<component xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<xi:include href="{listener.url}/part.xml"/>'
            '<xi:include href="file:///etc/passwd" parse="text"/></component>'
        )
        refused = refusal(document(body).encode())
        assert refused.reason is Refusal.XINCLUDE
        assert listener.connections == []

    def test_remote_stylesheet_instruction_is_ignored(self, listener: Listener) -> None:
        prolog = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<?xml-stylesheet type="text/xsl" href="{listener.url}/cda.xsl"?>'
        )
        with_instruction = read_document(document(prolog=prolog).encode())
        assert with_instruction == read_document(document().encode())
        assert listener.connections == []

    def test_schema_location_is_not_loaded(self, listener: Listener) -> None:
        attributes = f' xsi:schemaLocation="urn:hl7-org:v3 {listener.url}/CDA.xsd"'
        assert read_document(document(attributes=attributes).encode()).title == "Referral"
        assert listener.connections == []

    def test_unstructured_body_reference_is_not_followed(self, listener: Listener) -> None:
        body = (
            f'<component><nonXMLBody><text><reference value="{listener.url}/report.pdf"/>'
            "</text></nonXMLBody></component>"
        )
        read = read_document(document(body).encode())
        assert read.non_xml_body is not None
        assert read.non_xml_body.reference == f"{listener.url}/report.pdf"
        assert listener.connections == []


class TestLimits:
    def test_size_limit(self) -> None:
        raw = document().encode()
        assert read_document(raw, max_bytes=len(raw)).title == "Referral"
        refused = refusal(raw, max_bytes=len(raw) - 1)
        assert refused.reason is Refusal.TOO_LARGE
        assert str(len(raw)) in str(refused)

    def test_depth_limit_of_the_caller(self) -> None:
        nested = "<component>" * 30 + "</component>" * 30
        raw = document(nested).encode()
        assert read_document(raw, max_depth=40).title == "Referral"
        assert refusal(raw, max_depth=30).reason is Refusal.TOO_DEEP

    def test_depth_limit_of_libxml2(self) -> None:
        nested = "<component>" * 300 + "</component>" * 300
        refused = refusal(document(nested).encode(), max_depth=1000)
        assert refused.reason is Refusal.TOO_DEEP

    def test_sections_nested_to_the_depth_limit_are_read(self) -> None:
        levels = 125  # ClinicalDocument/component/structuredBody, then component/section pairs
        nested = "<component><section>" * levels + "</section></component>" * levels
        read = read_document(
            document(f"<component><structuredBody>{nested}</structuredBody></component>").encode()
        )
        assert [section.level for section in read.sections] == list(range(1, levels + 1))

    def test_text_node_limit_of_libxml2(self) -> None:
        raw = document(title="x" * 10_000_001).encode()
        assert refusal(raw, max_bytes=len(raw)).reason is Refusal.RESOURCE_LIMIT


class TestWellFormedness:
    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"", Refusal.EMPTY),
            (b" \n\t", Refusal.EMPTY),
            (b"hello", Refusal.NOT_WELL_FORMED),  # text, not XML: not an empty document
            (document()[:-5].encode(), Refusal.NOT_WELL_FORMED),
            (document("<component><section></component>").encode(), Refusal.NOT_WELL_FORMED),
            (document("<cda:component/>").encode(), Refusal.UNDECLARED_PREFIX),
            (document(attributes=' xmlns:bad="a b"').encode(), Refusal.INVALID_NAMESPACE),
            (document("<a xml:id='x'/><b xml:id='x'/>").encode(), Refusal.NOT_WELL_FORMED),
            (document().encode() + b"<ClinicalDocument/>", Refusal.NOT_WELL_FORMED),
            (b"\x00\x01\x02garbage", Refusal.UNSUPPORTED_ENCODING),
        ],
        ids=[
            "empty",
            "blank",
            "text",
            "truncated",
            "unclosed-tag",
            "undeclared-prefix",
            "invalid-namespace",
            "duplicate-xml-id",
            "two-roots",
            "binary",
        ],
    )
    def test_refused(self, raw: bytes, reason: Refusal) -> None:
        assert refusal(raw).reason is reason

    @pytest.mark.parametrize(
        "raw",
        [
            b'<Bundle xmlns="http://hl7.org/fhir"/>',
            b"<ClinicalDocument/>",
            b'<section xmlns="urn:hl7-org:v3"/>',
        ],
    )
    def test_only_a_v3_clinical_document_is_read(self, raw: bytes) -> None:
        assert refusal(raw).reason is Refusal.NOT_CLINICAL_DOCUMENT

    def test_messages_do_not_echo_the_document(self) -> None:
        raw = document(f"<component {'a' * 5000}/>").encode()
        assert len(str(refusal(raw))) < 400


class TestEncodings:
    def test_windows_1252_byte_in_utf8_is_refused_at_its_offset(self) -> None:
        raw = document(title="1.005 \x961.030").encode("latin-1")
        refused = refusal(raw)
        offset = raw.index(b"\x96")
        assert refused.reason is Refusal.INVALID_ENCODING
        assert refused.location == f"byte offset {offset}, line 1"
        assert "0x96" in str(refused)

    def test_declared_utf8_is_checked_too(self) -> None:
        prolog = '<?xml version="1.0" encoding="UTF-8"?>\n'
        refused = refusal(document(prolog=prolog, title="caf\xe9").encode("latin-1"))
        assert refused.reason is Refusal.INVALID_ENCODING
        assert refused.location is not None
        assert refused.location.endswith("line 2")
        assert "declaration" in str(refused)

    def test_declared_windows_1252_is_read_as_declared(self) -> None:
        prolog = '<?xml version="1.0" encoding="windows-1252"?>'
        raw = document(prolog=prolog, title="1.005 \u2013 1.030").encode("cp1252")
        assert read_document(raw).title == "1.005 \u2013 1.030"

    @pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
    def test_byte_order_marks(self, encoding: str) -> None:
        text = document(title="caf\u00e9 \U0001f600")
        raw = text.encode(encoding)
        if encoding in ("utf-16-le", "utf-16-be"):
            raw = "\ufeff".encode(encoding) + raw
        expected: CcdaDocument = read_document(text.encode())
        assert read_document(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        [
            document().encode("utf-16-le"),
            document(prolog='<?xml version="1.0" encoding="UTF-16"?>').encode(),
            "\ufeff".encode("utf-32") + document().encode("utf-32-le"),
            document(prolog='<?xml version="1.0" encoding="UTF-7"?>').encode(),
            document(prolog='<?xml version="1.0" encoding="EBCDIC-US"?>').encode(),
            b"\xef\xbb\xbf"
            + document(prolog='<?xml version="1.0" encoding="windows-1252"?>').encode(),
        ],
        ids=["utf16-no-bom", "utf16-declared-no-bom", "utf32", "utf7", "ebcdic", "bom-mismatch"],
    )
    def test_unaccepted_encodings(self, raw: bytes) -> None:
        assert refusal(raw).reason is Refusal.UNSUPPORTED_ENCODING


def test_each_document_gets_its_own_parser() -> None:
    good = document(title="good").encode()
    bad = document(title="&xxe;").encode()

    def read(raw: bytes) -> str:
        try:
            return read_document(raw).title or ""
        except MalformedDocument as refused:
            return refused.reason

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read, [good, bad] * 100))
    assert results == ["good", Refusal.UNDEFINED_ENTITY] * 100
