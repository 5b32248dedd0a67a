"""A signed form's URL as the document it names (RFC 3986 §6): equivalent spellings are one."""

import pytest

from mappings.uris import document_url

FORM = "https://forms.example.org/consents/1.pdf"


@pytest.mark.parametrize(
    "spelling",
    [
        "HTTPS://FORMS.EXAMPLE.ORG/consents/1.pdf",
        "https://forms.example.org:443/consents/1.pdf",
        "https://forms.example.org:/consents/1.pdf",
        "https://forms.example.org/consents/1.pdf#page=3",
        "https://forms.example.org/consents/%31.pdf",
        "https://forms.example.org/%63onsents/1%2Epdf",
        "https://forms.example.org./consents/1.pdf",
        "https://forms.example.org/consents/./1.pdf",
        "https://forms.example.org/a/b/../../consents/1.pdf",
        "https://forms.example.org/../consents/1.pdf",
        "  https://forms.example.org/consents/1.pdf ",
    ],
)
def test_equivalent_spellings_are_one_document(spelling: str) -> None:
    assert document_url(spelling) == FORM


@pytest.mark.parametrize(
    "other",
    [
        "https://forms.example.org/consents/2.pdf",
        "https://forms.example.org/Consents/1.pdf",  # the path is case-sensitive
        "https://forms.example.org/consents%2F1.pdf",  # an escaped slash is not a separator
        "https://forms.example.org:8443/consents/1.pdf",
        "http://forms.example.org/consents/1.pdf",
        "https://forms.example.org/consents/1.pdf?v=2",
    ],
)
def test_other_documents_stay_apart(other: str) -> None:
    assert document_url(other) != FORM


def test_escapes_are_upper_case_and_unparsable_urls_stay_as_written() -> None:
    assert document_url("https://h.example/a%2fb%c3%a9") == "https://h.example/a%2Fb%C3%A9"
    assert document_url("http://[::1]:80/x") == "http://[::1]/x"
    assert document_url("https://h.example:99999/x") == "https://h.example:99999/x"
    assert document_url("urn:uuid:A1B2") == "urn:uuid:A1B2"
