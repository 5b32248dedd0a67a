"""FHIR JSON and XML in and out: parse_json, to_json, to_xml and parse_xml."""

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from adapters import fhir_xml
from mappings import fhir
from mappings.errors import InvalidResource, MalformedContent, UnknownResourceType
from tests.mappings.conftest import example, valid_examples

XHTML = "http://www.w3.org/1999/xhtml"


def _normalized(resource: Any) -> Any:
    """The resource with each narrative div in canonical XML, the form XML round trips keep."""
    if isinstance(resource, dict):
        return {
            key: _canonical(value) if key == "div" else _normalized(value)
            for key, value in resource.items()
        }
    if isinstance(resource, list):
        return [_normalized(item) for item in resource]
    return resource


def _canonical(div: str) -> bytes:
    return etree.tostring(etree.fromstring(div.encode()), method="c14n")


def _xml(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>{body}'.encode()


class TestParseJson:
    def test_returns_the_resource_as_written(self) -> None:
        raw = b'{"resourceType": "Patient", "id": "p1", "birthDate": "1990-04-12"}'

        assert fhir.parse_json(raw) == {
            "resourceType": "Patient",
            "id": "p1",
            "birthDate": "1990-04-12",
        }

    @pytest.mark.parametrize(
        ("raw", "where"),
        [
            (b'{"resourceType": "Patient",\n "id": "a" "b"}', "line 2, column 12"),
            (b'{"resourceType": "Patient",}', "line 1, column 27"),
            (b'{resourceType: "Patient"}', "line 1, column 2"),
            (b'{"resourceType": "Patient", "name": [{"given": ["a"]]}', "line 1, column 53"),
        ],
    )
    def test_refuses_bad_syntax_saying_where(self, raw: bytes, where: str) -> None:
        with pytest.raises(MalformedContent) as raised:
            fhir.parse_json(raw)

        (issue,) = raised.value.issues
        assert (issue.severity, issue.code) == ("fatal", "invalid")
        assert where in issue.diagnostics

    @pytest.mark.parametrize("comment", [b"// note\n", b"/* note */"])
    def test_refuses_comments(self, comment: bytes) -> None:
        with pytest.raises(MalformedContent, match="comments are not allowed"):
            fhir.parse_json(comment + b'{"resourceType": "Patient"}')

    def test_accepts_a_utf8_byte_order_mark(self) -> None:
        assert fhir.parse_json(b'\xef\xbb\xbf{"resourceType": "Patient"}') == {
            "resourceType": "Patient"
        }

    @pytest.mark.parametrize(
        "raw", [b"[]", b'"Patient"', b"{}", b'{"resourceType": 1}', b'{"resourceType": null}']
    )
    def test_refuses_what_is_not_a_resource_object(self, raw: bytes) -> None:
        with pytest.raises(MalformedContent):
            fhir.parse_json(raw)

    @pytest.mark.parametrize("resource_type", ["Foo", "SubscriptionTopic", "Resource", "Evidence"])
    def test_refuses_types_that_are_not_r4_resources_here(self, resource_type: str) -> None:
        with pytest.raises(UnknownResourceType):
            fhir.parse_json(orjson.dumps({"resourceType": resource_type}))

    def test_refuses_documents_over_the_size_limit(self) -> None:
        raw = orjson.dumps({"resourceType": "Patient", "id": "p1"})

        with pytest.raises(MalformedContent) as raised:
            fhir.parse_json(raw, max_bytes=len(raw) - 1)

        assert raised.value.issues[0].code == "too-long"

    def test_keeps_the_digits_of_decimals_and_integers_as_integers(self) -> None:
        raw = b'{"resourceType": "Observation", "valueQuantity": {"value": 1.50}, "note": [1]}'

        resource = fhir.parse_json(raw)

        assert resource["valueQuantity"]["value"] == Decimal("1.50")
        assert type(resource["note"][0]) is int
        assert fhir.to_json(resource) == raw.replace(b": ", b":").replace(b", ", b",")

    @given(st.from_regex(r"-?(0|[1-9][0-9]{0,12})\.[0-9]{1,12}", fullmatch=True))
    def test_decimals_come_out_as_they_came_in(self, text: str) -> None:
        raw = f'{{"resourceType":"Observation","valueQuantity":{{"value":{text}}}}}'.encode()

        assert fhir.to_json(fhir.parse_json(raw)) == raw


class TestToJson:
    def test_writes_decimals_with_their_digits(self) -> None:
        resource = {"resourceType": "Observation", "valueQuantity": {"value": Decimal("0.0000001")}}

        assert fhir.to_json(resource) == (
            b'{"resourceType":"Observation","valueQuantity":{"value":0.0000001}}'
        )

    def test_refuses_values_json_cannot_carry(self) -> None:
        with pytest.raises(TypeError):
            fhir.to_json({"resourceType": "Patient", "id": object()})


class TestXmlFormat:
    """to_xml writes R4 §2.6.1 XML: attributes, primitives, extensions and order."""

    def test_writes_primitives_extensions_and_element_ids_in_the_spec_order(self) -> None:
        resource = {
            "resourceType": "Patient",
            "name": [
                {
                    "id": "n1",
                    "given": ["Alex", None],
                    "_given": [None, {"extension": [{"url": "http://x.org/e", "valueCode": "A"}]}],
                }
            ],
            "extension": [{"url": "http://x.org/flag", "valueBoolean": True}],
            "_birthDate": {
                "id": "b1",
                "extension": [{"url": "http://x.org/u", "valueString": "?"}],
            },
            "id": "p1",
        }

        assert fhir_xml.to_xml(resource) == _xml(
            '<Patient xmlns="http://hl7.org/fhir"><id value="p1"/>'
            '<extension url="http://x.org/flag"><valueBoolean value="true"/></extension>'
            '<name id="n1"><given value="Alex"/><given>'
            '<extension url="http://x.org/e"><valueCode value="A"/></extension></given></name>'
            '<birthDate id="b1"><extension url="http://x.org/u"><valueString value="?"/>'
            "</extension></birthDate></Patient>"
        )

    def test_escapes_markup_and_keeps_line_breaks_in_attributes(self) -> None:
        resource = {"resourceType": "Patient", "name": [{"text": 'a < b & "c"\n\td\r'}]}

        xml = fhir_xml.to_xml(resource)

        assert b'value="a &lt; b &amp; &quot;c&quot;&#10;&#9;d&#13;"' in xml
        assert fhir_xml.parse_xml(xml) == resource

    def test_writes_numbers_and_booleans_as_their_lexical_forms(self) -> None:
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "dose"},
            "valueQuantity": {"value": Decimal("1.50")},
            "component": [
                {"code": {"text": "n"}, "valueInteger": -3},
                {"code": {"text": "b"}, "valueBoolean": False},
                {"code": {"text": "f"}, "valueQuantity": {"value": 2.25}},
            ],
        }

        xml = fhir_xml.to_xml(resource)

        for value in (b"1.50", b"-3", b"false", b"2.25"):
            assert b'value="' + value + b'"' in xml
        assert fhir_xml.parse_xml(xml)["valueQuantity"] == {"value": Decimal("1.50")}

    def test_the_order_of_json_keys_does_not_matter(self) -> None:
        resource = {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "other",
            "name": [{"family": "F", "given": ["G"]}],
        }
        reversed_keys = {key: resource[key] for key in reversed(resource)}

        assert fhir_xml.to_xml(reversed_keys) == fhir_xml.to_xml(resource)

    def test_refuses_unknown_properties(self) -> None:
        with pytest.raises(InvalidResource):
            fhir_xml.to_xml({"resourceType": "Patient", "nickname": "x"})


class TestXmlRoundTrip:
    @pytest.mark.corpus
    @pytest.mark.parametrize("path", valid_examples())
    def test_every_example_survives_json_to_xml_to_json(self, path: Path) -> None:
        resource = fhir.parse_json(path.read_bytes())

        back = fhir_xml.parse_xml(fhir_xml.to_xml(resource))

        assert _normalized(back) == _normalized(resource)

    def test_resources_inside_resources_survive(self) -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {
                    "response": {
                        "status": "400 Bad Request",
                        "outcome": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "invalid"}],
                        },
                    }
                },
                {
                    "fullUrl": "urn:uuid:0f3d28ae-4c27-49eb-987d-c35d536b40f8",
                    "resource": {
                        "resourceType": "Parameters",
                        "parameter": [
                            {"name": "patient", "resource": {"resourceType": "Patient", "id": "p"}},
                            {"name": "count", "part": [{"name": "n", "valueInteger": 2}]},
                        ],
                    },
                    "response": {"status": "201 Created"},
                },
            ],
        }

        xml = fhir_xml.to_xml(bundle)

        assert b"<resource><Parameters><parameter>" in xml
        assert b"<outcome><OperationOutcome>" in xml
        assert fhir_xml.parse_xml(xml) == bundle

    def test_a_repeating_primitive_with_only_extensions_keeps_no_value_array(self) -> None:
        extension = {"extension": [{"url": "http://x.org/e", "valueString": "x"}]}
        resource = {"resourceType": "Patient", "name": [{"_given": [extension, extension]}]}

        assert fhir_xml.parse_xml(fhir_xml.to_xml(resource)) == resource

    @given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1))
    def test_any_printable_string_survives(self, text: str) -> None:
        resource = {"resourceType": "Patient", "name": [{"text": text}]}

        assert fhir_xml.parse_xml(fhir_xml.to_xml(resource)) == resource


class TestParseXml:
    def test_the_narrative_div_uses_the_xhtml_default_namespace(self) -> None:
        raw = _xml(
            '<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<text><status value="generated"/><h:div><h:p>Hi <h:b>there</h:b></h:p></h:div></text>'
            "</Patient>"
        )

        div = fhir_xml.parse_xml(raw)["text"]["div"]

        assert div == f'<div xmlns="{XHTML}"><p>Hi <b>there</b></p></div>'

    def test_an_unprefixed_div_is_kept_as_written(self) -> None:
        div = f'<div xmlns="{XHTML}">\n  <p class="x">a&amp;b</p>\n</div>'
        text = f'<text><status value="generated"/>{div}</text>'
        raw = _xml(f'<Patient xmlns="http://hl7.org/fhir">{text}</Patient>')

        assert fhir_xml.parse_xml(raw)["text"]["div"] == div

    def test_a_repeated_single_element_is_refused(self) -> None:
        raw = _xml(
            '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/>'
            "</Patient>"
        )

        with pytest.raises(InvalidResource) as raised:
            fhir_xml.parse_xml(raw)

        (issue,) = raised.value.issues
        assert issue.diagnostics == "Patient.gender: max allowed = 1, but found 2"
        assert issue.expression == ("Patient",)

    @pytest.mark.parametrize(
        ("body", "diagnostics", "expression"),
        [
            ("<nickname value='x'/>", "Undefined element 'nickname'", "Patient"),
            (
                "<name><text value='x'><b>x</b></text></name>",
                "Undefined element 'b'",
                "Patient.name[0].text",
            ),
            (
                "<active value='yes'/>",
                "A boolean must be true or false, not 'yes'",
                "Patient.active",
            ),
            (
                "<multipleBirthInteger value='1.5'/>",
                "Not a valid integer: '1.5'",
                "Patient.multipleBirthInteger",
            ),
            (
                "<gender value='male' colour='red'/>",
                "Undefined attribute 'colour'",
                "Patient.gender",
            ),
            ("<name>text</name>", "Text is not allowed between FHIR elements", "Patient.name[0]"),
            ("<name url='x'/>", "Undefined attribute 'url'", "Patient.name[0]"),
            (
                "<contained><Patient/><Patient/></contained>",
                "A resource element must hold exactly one resource",
                "Patient.contained[0]",
            ),
            (
                "<contained><Foo/></contained>",
                "'Foo' is not an R4 resource type",
                "Patient.contained[0]",
            ),
            ("<text><div><p>x</p></div></text>", "Undefined element 'div'", "Patient.text"),
        ],
    )
    def test_refuses_what_r4_does_not_define(
        self, body: str, diagnostics: str, expression: str
    ) -> None:
        with pytest.raises(InvalidResource) as raised:
            fhir_xml.parse_xml(_xml(f'<Patient xmlns="http://hl7.org/fhir">{body}</Patient>'))

        assert (diagnostics, (expression,)) in {
            (issue.diagnostics, issue.expression) for issue in raised.value.issues
        }

    def test_reports_every_problem_not_only_the_first(self) -> None:
        raw = _xml('<Patient xmlns="http://hl7.org/fhir"><a/><active value="1"/><b/></Patient>')

        with pytest.raises(InvalidResource) as raised:
            fhir_xml.parse_xml(raw)

        assert len(raised.value.issues) == 3

    def test_a_root_outside_the_fhir_namespace_is_malformed(self) -> None:
        with pytest.raises(MalformedContent):
            fhir_xml.parse_xml(_xml("<Patient/>"))

    @pytest.mark.parametrize("name", ["Foo", "SubscriptionTopic"])
    def test_a_root_that_is_no_r4_resource_is_an_unknown_type(self, name: str) -> None:
        with pytest.raises(UnknownResourceType):
            fhir_xml.parse_xml(_xml(f'<{name} xmlns="http://hl7.org/fhir"/>'))

    def test_schema_location_is_ignored(self) -> None:
        raw = _xml(
            '<Patient xmlns="http://hl7.org/fhir" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://hl7.org/fhir patient.xsd"><id value="p"/></Patient>'
        )

        assert fhir_xml.parse_xml(raw) == {"resourceType": "Patient", "id": "p"}


class TestXmlHardening:
    @pytest.mark.parametrize(
        "raw",
        [
            b'<!DOCTYPE Patient [<!ENTITY x "y">]><Patient xmlns="http://hl7.org/fhir"/>',
            b'<!DOCTYPE Patient SYSTEM "file:///etc/passwd"><Patient xmlns="http://hl7.org/fhir"/>',
            b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<Patient xmlns="http://hl7.org/fhir"><id value="&b;"/></Patient>',
            b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://example.org/evil.dtd"> %p;]><r/>',
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Patient [<!ENTITY x "y">]>'
            '<Patient xmlns="http://hl7.org/fhir"/>'.encode("utf-16"),
        ],
        ids=["internal-subset", "external-dtd", "billion-laughs", "parameter-entity", "utf-16"],
    )
    def test_refuses_any_doctype(self, raw: bytes) -> None:
        with pytest.raises(MalformedContent):
            fhir_xml.parse_xml(raw)

    def test_refuses_undefined_entities(self) -> None:
        raw = _xml('<Patient xmlns="http://hl7.org/fhir"><id value="a&reg;"/></Patient>')

        with pytest.raises(MalformedContent, match="reg"):
            fhir_xml.parse_xml(raw)

    def test_refuses_xml_that_is_not_well_formed_without_recovering(self) -> None:
        with pytest.raises(MalformedContent):
            fhir_xml.parse_xml(
                _xml('<Patient xmlns="http://hl7.org/fhir"><id value="p"></Patient>')
            )

    def test_refuses_documents_over_the_size_limit(self) -> None:
        raw = _xml('<Patient xmlns="http://hl7.org/fhir"/>')

        with pytest.raises(MalformedContent):
            fhir_xml.parse_xml(raw, max_bytes=len(raw) - 1)

    def test_refuses_nesting_over_the_depth_limit(self) -> None:
        extensions = '<extension url="http://x.org/e">' * 10 + "</extension>" * 10
        raw = _xml(f'<Patient xmlns="http://hl7.org/fhir">{extensions}</Patient>')

        with pytest.raises(MalformedContent, match="nested"):
            fhir_xml.parse_xml(raw, max_depth=5)

    def test_refuses_nesting_deeper_than_libxml2_allows(self) -> None:
        extensions = '<extension url="http://x.org/e">' * 300 + "</extension>" * 300
        raw = _xml(f'<Patient xmlns="http://hl7.org/fhir">{extensions}</Patient>')

        with pytest.raises(MalformedContent):
            fhir_xml.parse_xml(raw)


# fhir.resources' model_validate_xml drops the id attribute of elements (<agent id="a1">), so it
# cannot read these two examples back whole; our own round trip keeps the ids.
_ELEMENT_IDS = ("CarePlan-gpvisit.json", "Provenance-example.json")


def _with_element_ids_marked(params: list[Any]) -> list[Any]:
    reason = "fhir.resources' XML reader drops element id attributes"
    return [
        pytest.param(
            *param.values, id=param.id, marks=pytest.mark.xfail(reason=reason, strict=True)
        )
        if param.id is not None and param.id.endswith(_ELEMENT_IDS)
        else param
        for param in params
    ]


class TestCrossCheckWithFhirResources:
    """fhir.resources' own XML is an independent implementation of the same format."""

    EXAMPLES = (
        "CarePlan-f201.json",
        "Consent-consent-example-basic.json",
        "EpisodeOfCare-example.json",
        "Goal-stop-smoking.json",
        "Patient-example.json",
        "ServiceRequest-example.json",
        "Task-example1.json",
    )

    @pytest.mark.corpus
    @pytest.mark.parametrize("name", EXAMPLES)
    def test_to_xml_writes_the_tree_fhir_resources_writes(self, name: str) -> None:
        resource = fhir.parse_json(example(name).read_bytes())
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)

        ours = etree.fromstring(fhir_xml.to_xml(resource))
        theirs = etree.fromstring(model.model_dump_xml())

        assert _tree(ours) == _tree(theirs)

    @pytest.mark.corpus
    @pytest.mark.parametrize("path", _with_element_ids_marked(valid_examples()))
    def test_fhir_resources_reads_our_xml_as_the_json(self, path: Path) -> None:
        resource = fhir.parse_json(path.read_bytes())
        model_class = get_fhir_model_class(resource["resourceType"])

        from_xml = model_class.model_validate_xml(fhir_xml.to_xml(resource))

        expected = model_class.model_validate(resource).model_dump()
        assert _normalized(from_xml.model_dump()) == _normalized(expected)


def _tree(element: Any) -> Any:
    """An element as comparable data: values compared as instants or numbers where they are.

    fhir.resources writes 2013-06-20T23:41:23+00:00 for ...23Z and 80.0 for 80; both mean the
    same, so those differences are not differences of format.
    """
    if element.tag == f"{{{XHTML}}}div":
        return etree.tostring(element, method="c14n")
    attributes = {name: _comparable(value) for name, value in element.attrib.items()}
    return element.tag, attributes, [_tree(child) for child in element]


def _comparable(value: str) -> Any:
    try:
        return Decimal(value)
    except ArithmeticError:
        pass
    try:
        return datetime.fromisoformat(value) if "T" in value else value
    except ValueError:
        return value


class TestResourceTypes:
    def test_every_type_has_an_r4b_resource_model(self) -> None:
        for resource_type in fhir.RESOURCE_TYPES:
            assert get_fhir_model_class(resource_type).has_resource_base()

    def test_the_types_of_this_project_are_known(self) -> None:
        assert {
            "Bundle",
            "CarePlan",
            "Consent",
            "EpisodeOfCare",
            "Goal",
            "Patient",
            "ServiceRequest",
            "Task",
            "AuditEvent",
            "Provenance",
        } <= fhir.RESOURCE_TYPES

    def test_r4b_only_and_redefined_types_are_not(self) -> None:
        assert (
            not {
                "SubscriptionTopic",
                "SubscriptionStatus",
                "Citation",
                "EvidenceReport",
                "Ingredient",
                "Evidence",
                "EvidenceVariable",
                "Resource",
                "DomainResource",
            }
            & fhir.RESOURCE_TYPES
        )
