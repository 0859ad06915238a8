"""A Store request of thousands of parts holds one part at a time: no descriptor, staged file or
parsed header accumulates per part (PS3.18 10.5 places no limit on the number of parts)."""

import resource
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import LiveServer
from tests.dataset_factories import ct_series

PARTS = 1500
FD_LIMIT = 512  # well below PARTS: a descriptor held per part would run out


@pytest.fixture
def low_fd_limit() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_LIMIT, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _body(files: list[bytes], boundary: str) -> Iterator[bytes]:
    for data in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def test_thousands_of_parts_in_one_request(live_server: LiveServer, low_fd_limit: None) -> None:
    files = ct_series(PARTS, size=4, patient="MANY^PARTS")
    response = requests.post(
        f"{live_server.dicomweb}/studies", data=_body(files, "many-parts"),
        headers={"Content-Type": 'multipart/related; type="application/dicom"; '
                                 "boundary=many-parts", "Accept": "application/dicom+json"})
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["00081199"]["Value"]) == PARTS
    assert list((live_server.data_dir / "staging").iterdir()) == []
    found = requests.get(f"{live_server.dicomweb}/instances",
                         params={"PatientName": "MANY^PARTS", "limit": PARTS})
    assert len(found.json()) == PARTS
