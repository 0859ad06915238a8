"""Numbers in URLs, query strings and headers are ASCII digits (RFC 9110 5.6.1): other
scripts' digits and superscripts answer 400 (a Range the server cannot read is ignored), never
a 500 and never a frame the client did not name. Search keys that hold only separators
(`StudyInstanceUID=,`, fuzzy `PatientName=^`) answer 400 or match everything, never a 500."""

from io import BytesIO

import pydicom
import pytest
import requests

from pacs.ascii_numbers import ascii_float, ascii_int
from tests.conftest import LiveServer
from tests.dataset_factories import ct_series

NOT_ASCII = ["١", "𝟏", "²", "①", "1_0", "٣٠", "0x10", "-1"]


@pytest.fixture(scope="module")
def instance(shared_server: LiveServer) -> str:
    """The URL of one stored 8x8 CT instance."""
    data = ct_series(1, size=8, patient="ASCII^NUMBERS")[0]
    assert requests.post(f"{shared_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).ok
    ds = pydicom.dcmread(BytesIO(data))
    return (f"{shared_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")


@pytest.mark.parametrize("text", NOT_ASCII)
def test_frame_numbers_are_ascii_digits(instance: str, text: str) -> None:
    response = requests.get(f"{instance}/frames/{text}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert requests.get(f"{instance}/frames/1").status_code == 200


@pytest.mark.parametrize("key", ["limit", "offset"])
@pytest.mark.parametrize("text", NOT_ASCII)
def test_limit_and_offset_are_ascii_digits(shared_server: LiveServer, key: str,
                                           text: str) -> None:
    response = requests.get(f"{shared_server.dicomweb}/studies", params={key: text})
    assert response.status_code == 400, response.text
    assert key in response.json()["error"]["message"]


@pytest.mark.parametrize(("param", "value"), [
    ("quality", "٩٠"), ("quality", "9_0"), ("viewport", "١٠,10"), ("viewport", "10,²"),
    ("window", "٤٠,400"), ("window", "40,nan"), ("window", "40,inf"), ("window", "4_0,400"),
])
def test_rendered_parameters_are_ascii_numbers(instance: str, param: str, value: str) -> None:
    response = requests.get(f"{instance}/rendered", params={param: value},
                            headers={"Accept": "image/jpeg"})
    assert response.status_code == 400, response.text
    assert param in response.json()["error"]["message"]


def test_a_range_in_other_digits_is_ignored(instance: str) -> None:
    url = f"{instance}/bulkdata/7FE00010"
    accept = {"Accept": "application/octet-stream; transfer-syntax=*"}
    whole = requests.get(url, headers=accept)
    assert whole.status_code == 200 and len(whole.content) == 8 * 8 * 2
    part = requests.get(url, headers={**accept, "Range": "bytes=0-3"})
    assert (part.status_code, part.content) == (206, whole.content[:4])
    # headers travel as Latin-1: superscripts are the non-ASCII digits a client can send
    for header in ("bytes=²-3", "bytes=0-¹", "bytes=-²", "bytes=1_0-20", "bytes= -"):
        ignored = requests.get(url, headers={**accept, "Range": header})
        assert (ignored.status_code, ignored.content) == (200, whole.content), header


@pytest.mark.parametrize("value", [",", ",,", "\\", ", \\ ,"])
def test_a_uid_list_of_nothing_is_400(shared_server: LiveServer, value: str) -> None:
    response = requests.get(f"{shared_server.dicomweb}/studies",
                            params={"StudyInstanceUID": value})
    assert response.status_code == 400, response.text
    assert "StudyInstanceUID" in response.json()["error"]["message"]


@pytest.mark.parametrize(("key", "value"), [
    ("PatientName", "^"), ("PatientName", "^ ="), ("ModalitiesInStudy", "\\"),
    ("ModalitiesInStudy", "\\\\"),
])
def test_keys_of_separators_alone_match_everything(shared_server: LiveServer, instance: str,
                                                   key: str, value: str) -> None:
    everything = requests.get(f"{shared_server.dicomweb}/studies")
    response = requests.get(f"{shared_server.dicomweb}/studies",
                            params={key: value, "fuzzymatching": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == everything.json()


def test_the_parsers_themselves() -> None:
    assert [ascii_int(t) for t in ("0", "007", "18", "9" * 30)] == [0, 7, 18, int("9" * 30)]
    assert [ascii_int(t) for t in (*NOT_ASCII, "", " 1", "1 ", "9" * 5000)] == [None] * 12
    assert [ascii_float(t) for t in ("1.5", "-2", ".5", "1e3", "+3.")] == [1.5, -2, .5, 1e3, 3]
    assert [ascii_float(t) for t in ("nan", "inf", "1e999", "١.٥", "1_0", "", ".")] == \
        [None] * 7
