"""Fixtures of the black-box DICOMweb conformance suite (PS3.18 10.4-10.6).

    pytest conformance --base-url http://127.0.0.1:8080/dicomweb -p no:cacheprovider

Without `--base-url` every test here is skipped, so no test run ever talks to a server by
accident. Tests marked `optional` check Google Cloud Healthcare or project extensions rather
than PS3.18; tests marked `transcoding` (which a server may answer by transcoding) run last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from conformance.corpus import Corpus, Stored, build_corpus
from conformance.wire import DICOM_JSON, encode_multipart, store_response

HERE = Path(__file__).resolve().parent
OBSERVATIONS = pytest.StashKey[list[tuple[str, str, str]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "DICOMweb conformance suite")
    try:
        group.addoption("--base-url", default=None,
                        help="DICOMweb root of the server under test, e.g. "
                             "http://127.0.0.1:8080/dicomweb")
    except ValueError:
        pass  # pytest-base-url already defines --base-url with the same meaning
    group.addoption("--request-timeout", type=float, default=60.0,
                    help="seconds to wait for any one HTTP response (default 60)")
    group.addoption("--header", action="append", default=[], metavar="NAME:VALUE",
                    help="an HTTP header for every request, e.g. 'Authorization: Bearer …' "
                         "(repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "optional: a Google Cloud Healthcare or project extension, not PS3.18")
    config.addinivalue_line(
        "markers", "transcoding: may make the server transcode; runs after every other test")
    config.stash[OBSERVATIONS] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A server that crashes while transcoding (Orthanc 1.10 does, now and then) then takes only
    # these tests down with it. The sort is stable: the rest keep their order.
    items.sort(key=lambda item: item.get_closest_marker("transcoding") is not None)
    if config.getoption("--base-url"):
        return
    skip = pytest.mark.skip(reason="the conformance suite needs --base-url")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    notes = config.stash.get(OBSERVATIONS, [])
    if notes:
        terminalreporter.section("server behaviour observed")
        for nodeid, what, value in notes:
            terminalreporter.write_line(f"{nodeid}: {what} = {value}")


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    """The DICOMweb root given with --base-url, without a trailing slash."""
    return str(request.config.getoption("--base-url")).rstrip("/")


class _TimeoutSession(requests.Session):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="session")
def headers(request: pytest.FixtureRequest) -> dict[str, str]:
    """Headers given with --header, sent with every request (credentials, for instance)."""
    found = {}
    for spec in request.config.getoption("--header"):
        name, sep, value = spec.partition(":")
        if not sep or not name.strip():
            raise pytest.UsageError(f"--header expects NAME:VALUE, got {spec!r}")
        found[name.strip()] = value.strip()
    return found


@pytest.fixture(scope="session")
def http(request: pytest.FixtureRequest, headers: dict[str, str]) -> Iterator[requests.Session]:
    """A plain requests session with a per-request timeout, for wire-level checks."""
    with _TimeoutSession(request.config.getoption("--request-timeout")) as session:
        session.headers.update(headers)
        yield session


@pytest.fixture(scope="session")
def client(base_url: str, headers: dict[str, str],
           request: pytest.FixtureRequest) -> DICOMwebClient:
    """dicomweb-client against the server: what a real user agent sends."""
    return DICOMwebClient(url=base_url, headers=headers or None,
                          timeout=request.config.getoption("--request-timeout"))


@pytest.fixture(scope="module")
def stored(base_url: str, http: requests.Session) -> Stored:
    """A fresh corpus (new UIDs and patients) stored in one multipart request (PS3.18 10.5)."""
    corpus = build_corpus()
    body, content_type = encode_multipart([instance.data for instance in corpus.all])
    response = http.post(f"{base_url}/studies", data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    if response.status_code not in (200, 202):
        pytest.fail(f"storing the test corpus answered {response.status_code}: "
                    f"{response.text[:500]}")
    return Stored(corpus=corpus, status=response.status_code,
                  content_type=response.headers.get("content-type", ""),
                  response=store_response(response))


@pytest.fixture(scope="module")
def corpus(stored: Stored) -> Corpus:
    """The module's stored corpus."""
    return stored.corpus


@pytest.fixture
def observe(request: pytest.FixtureRequest,
            record_property: Callable[[str, object], None]) -> Callable[[str, str], None]:
    """Record a behaviour the standard leaves open (shown in the summary and JUnit XML)."""

    def note(what: str, value: str) -> None:
        record_property(f"observed: {what}", value)
        request.config.stash[OBSERVATIONS].append((request.node.nodeid, what, value))

    return note


@pytest.fixture(autouse=True)
def _label(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> None:
    # Lets conformance/report.py tell PS3.18 tests from extensions in JUnit XML.
    record_property("optional", request.node.get_closest_marker("optional") is not None)
