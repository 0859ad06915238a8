"""The log configuration `pacs serve` gives uvicorn: JSON lines when asked, and an
unhandled error reported once (ours, with the request), not again by uvicorn."""

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from pacs.logs import log_config


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
             for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "pacs", "pacs.access")}
    yield
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def test_an_unhandled_error_is_logged_once_and_in_json(configured: None,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    logging.config.dictConfig(log_config("info", "json"))
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        logging.getLogger("pacs").error("unhandled error on GET /x", exc_info=exc)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n",
                                                 exc_info=exc)
    logging.getLogger("uvicorn.error").info("Uvicorn running")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["unhandled error on GET /x",
                                                   "Uvicorn running"]
    assert "RuntimeError: boom" in lines[0]["exception"]
