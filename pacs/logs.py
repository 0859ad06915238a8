"""The server's log configuration, for uvicorn and for us alike: text (the default) or one
JSON object per line (`--log-format json`), at `--log-level`. Each request is one line of
the `pacs.access` logger (pacs/http/request_metrics.py), with its duration."""

import json
import logging
from typing import Any

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
ACCESS_LOGGER = "pacs.access"
_FIELDS = ("client", "method", "path", "status", "duration_ms", "bytes_in", "bytes_out",
           "config")


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, message, the request's fields when
    it has them, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                                "level": record.levelname, "logger": record.name,
                                "message": record.getMessage()}
        line.update((f, getattr(record, f)) for f in _FIELDS if hasattr(record, f))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class LoggedOnce(logging.Filter):
    """Drops uvicorn's second report of an unhandled error: the handler in
    pacs/http/errors.py has logged it with the request's method and path, and Starlette
    re-raises it to uvicorn only to be logged again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in ASGI application")


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """A logging.config dictionary for uvicorn.run: every logger to stderr in `fmt`."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else \
        {"format": "%(levelname)s:     %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "default",
               "stream": "ext://sys.stderr", "filters": ["once"]}
    loggers = {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
               for name in ("uvicorn", "uvicorn.error", "pacs", ACCESS_LOGGER)}
    loggers["uvicorn.access"] = {"handlers": [], "propagate": False}  # ours has durations
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"default": formatter}, "handlers": {"default": handler},
            "filters": {"once": {"()": f"{__name__}.LoggedOnce"}},
            "loggers": loggers}
