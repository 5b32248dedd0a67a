"""An unhandled error's traceback never reaches the log with its text (it may quote PHI)."""

import logging

import pytest

from interop.logs import NoExceptionText


def test_traceback_is_reduced_to_the_exception_type(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.error.test")
    logger.addFilter(NoExceptionText())
    try:
        raise ValueError("Zebulonia Testperson, born 1977-07-17")
    except ValueError:
        with caplog.at_level(logging.ERROR):
            logger.exception("Exception in ASGI application")
    assert "Zebulonia" not in caplog.text
    assert "1977-07-17" not in caplog.text
    assert "ValueError; details withheld" in caplog.text
