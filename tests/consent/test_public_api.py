"""The package's public surface is its `__all__`, and the engine stays pure."""

import ast
import inspect
from datetime import datetime
from pathlib import Path

import consent
from consent import ConsentDirective, Decision, DisclosureRequest, Validity

PACKAGE = Path(consent.__file__).parent
ALLOWED_IMPORTS = {"__future__", "collections", "dataclasses", "datetime", "enum", "functools"}
ALLOWED_IMPORTS |= {"types", "typing", "pydantic", "consent"}


def test_all_names_exist_and_are_sorted() -> None:
    assert all(hasattr(consent, name) for name in consent.__all__)
    assert consent.__all__ == sorted(consent.__all__, key=lambda n: (not n.isupper(), n))


def test_every_public_class_of_the_model_is_exported() -> None:
    from consent import model

    public = {
        name
        for name, value in vars(model).items()
        if inspect.isclass(value)
        and value.__module__ == model.__name__
        and not name.startswith("_")
    }

    assert public <= set(consent.__all__)


def test_signatures() -> None:
    decide = inspect.signature(consent.decide)
    check = inspect.signature(consent.check)

    assert list(decide.parameters) == ["request", "directives", "as_of"]
    assert decide.return_annotation is Decision
    assert decide.parameters["request"].annotation is DisclosureRequest
    assert decide.parameters["as_of"].annotation is datetime
    assert list(check.parameters) == ["directive", "as_of", "occurred_events"]
    assert check.parameters["directive"].annotation is ConsentDirective
    assert check.return_annotation is Validity


def test_the_engine_imports_only_the_standard_library_and_pydantic() -> None:
    """ARCHITECTURE.md rule 1: no FHIR library, no clock, no I/O in `consent/`."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_IMPORTS, (path.name, roots)


def test_the_engine_never_reads_the_clock() -> None:
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        for clock in (".now(", "utcnow", "time.time", "date.today"):
            assert clock not in source, (path.name, clock)
