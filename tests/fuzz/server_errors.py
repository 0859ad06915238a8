"""What counts as the server failing a request, for every live test of the fuzz suite."""

import time

import requests

# 503 answers a query stopped for running too long, on purpose. A 507 says the disk is full,
# which it never is in these tests, so a 507 is an error mistaken for a lack of space.
DELIBERATE_5XX = frozenset({503})
# uvicorn logs the traceback of a 500 after sending it; formatting a traceback in 3.11 builds
# ASTs through state shared by all threads, and pytest formatting its report at that moment
# can then fail with "SystemError: AST constructor recursion depth mismatch" (an INTERNALERROR
# that hides the failure): let the server finish first.
SETTLE_SECONDS = 0.2


def is_server_error(status: int) -> bool:
    return status >= 500 and status not in DELIBERATE_5XX


def assert_no_server_error(response: requests.Response, what: str) -> None:
    """Fail (after letting the server log) if `response` is a 5xx other than a 503."""
    if is_server_error(response.status_code):
        time.sleep(SETTLE_SECONDS)
        raise AssertionError(f"{response.status_code} for {what}: {response.text[:300]}")


def fail_cut_short(exc: Exception, what: str) -> None:
    """Fail (after letting the server log) for a response the server broke off."""
    time.sleep(SETTLE_SECONDS)
    raise AssertionError(f"{type(exc).__name__} for {what}: {exc}") from exc
