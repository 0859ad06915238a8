"""Keeps credentials out of the server's logs: uvicorn's access log prints each request's
path with its query, where an `access_token` may travel (Google accepts it there, and
dcm4che's stowrs sends it so)."""

import logging
import re

_TOKEN = re.compile(r"(access_token=)[^&\s]*", re.IGNORECASE)
ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    """`text` with the value of every `access_token` parameter replaced."""
    return _TOKEN.sub(r"\1REDACTED", text)


class RedactTokens(logging.Filter):
    """Replaces the value of every `access_token` parameter in a record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
