"""Logging that never carries patient data: messages of ours name kinds of events, and the
tracebacks the ASGI server would print for an unhandled error (whose exception texts can quote
request content) are cut down to the exception's type."""

import logging


class NoExceptionText(logging.Filter):
    """Replace a record's traceback by the exception's type name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__}; details withheld)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Filter the loggers an unhandled error reaches: uvicorn's and ours."""
    for name in ("uvicorn.error", "uvicorn", "interop"):
        logging.getLogger(name).addFilter(NoExceptionText())
