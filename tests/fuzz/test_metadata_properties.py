"""Property-based tests of Store from metadata (PS3.18 10.5.1.2.2-3): DICOM JSON (PS3.18 F.2)
and Native DICOM Model XML (PS3.19 A.1) that is bent in every way is refused with BuildError
or XmlModelError (a Cannot Understand failure), never with anything else; JSON written as XML
reads back as the same JSON; and a live server answers such Store requests without a 5xx."""

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pacs.dicom.dicom_xml import XmlModelError, from_native_xml, to_native_xml
from pacs.service.instance_builder import BuildError, BulkPart, build_part10, identity
from tests.conftest import LiveServer
from tests.fuzz.metadata_bodies import (
    JSON_TYPE,
    PIXELS,
    XML_TYPE,
    instance,
    json_instances,
    with_pixels,
    xml_documents,
    xml_instance,
)
from tests.fuzz.server_errors import assert_no_server_error

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UNIT = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Bent JSON fails in dozens of distinct ways while the builder lets pydicom's errors through;
# shrinking each took minutes, and the exception and the unshrunk instance say enough.
UNSHRUNK = settings(UNIT, phases=[Phase.explicit, Phase.reuse, Phase.generate])
LIVE = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
BULK = {"pixels": BulkPart("application/octet-stream", None, PIXELS)}


def instances_of(metadata: Any) -> list[Any]:
    """What the server takes from a parsed JSON part: an object, or an array's items."""
    return [metadata] if isinstance(metadata, dict) else \
        metadata if isinstance(metadata, list) else []


def test_the_valid_instance_builds() -> None:
    assert build_part10(instance(), BULK)[128:132] == b"DICM"
    assert build_part10(from_native_xml(xml_instance().encode()), BULK)[128:132] == b"DICM"


@UNSHRUNK
@given(metadata=json_instances())
def test_bent_json_builds_or_is_a_build_error(metadata: Any) -> None:
    for item in instances_of(metadata):
        if not isinstance(item, dict):
            continue
        identity(item)  # read before anything can fail, to name the instance
        try:
            build_part10(item, BULK)
        except BuildError:
            pass


@UNIT
@given(document=xml_documents())
def test_bent_xml_is_read_or_is_an_xml_model_error(document: str) -> None:
    try:
        dataset = from_native_xml(document.encode("utf-8", "surrogatepass"))
    except XmlModelError:
        return
    identity(dataset)
    try:
        build_part10(dataset, BULK)
    except BuildError:
        pass


# Values the JSON model carries, by VR, in the form from_native_xml gives them back.
XML_SAFE = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\^=")
STRINGS = st.text(XML_SAFE, min_size=1, max_size=16).map(str.strip).filter(bool)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "LO": STRINGS, "SH": STRINGS, "CS": STRINGS, "UT": STRINGS, "UI": STRINGS,
    "US": st.integers(0, 65535), "SS": st.integers(-32768, 32767),
    "UL": st.integers(0, 2**32 - 1), "SL": st.integers(-(2**31), 2**31 - 1),
    "IS": st.integers(-(2**31), 2**31 - 1),
    "FD": st.floats(allow_nan=False, allow_infinity=False),
    "DS": st.floats(-1e15, 1e15, allow_nan=False, allow_infinity=False),
    "PN": st.lists(STRINGS, min_size=1, max_size=5).map(lambda c: {"Alphabetic": "^".join(c)}),
}


@st.composite
def json_datasets(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """DICOM JSON datasets of public attributes (with nulls where values are empty)."""
    out: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 5))):
        group = draw(st.integers(0x0008, 0x7FDF)) & 0xFFFE
        key = f"{group:04X}{draw(st.integers(0x0010, 0xFFFF)):04X}"
        vr = draw(st.sampled_from([*VALUES, *(["SQ"] if depth < 2 else [])]))
        if vr == "SQ":
            values = draw(st.lists(json_datasets(depth + 1), max_size=2))
        else:
            values = draw(st.lists(st.one_of(VALUES[vr], st.none()), max_size=3))
        # PS3.18 F.2.5: an element without values has no "Value"
        out[key] = {"vr": vr, "Value": values} if values else {"vr": vr}
    return dict(sorted(out.items()))


@UNIT
@given(dataset=json_datasets())
def test_json_written_as_xml_reads_back_the_same(dataset: dict[str, Any]) -> None:
    for namespace in (None, "http://dicom.nema.org/PS3.19/models/NativeDICOM"):
        assert from_native_xml(to_native_xml(dataset, namespace)) == dataset


# -- live ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_server: LiveServer) -> LiveServer:
    for body, ctype in ((with_pixels(json.dumps([instance()]).encode()), JSON_TYPE),
                        (with_pixels(xml_instance().encode(), "application/dicom+xml"),
                         XML_TYPE)):
        stored = requests.post(f"{shared_server.dicomweb}/studies", data=body,
                               headers={"Content-Type": ctype,
                                        "Accept": "application/dicom+json"})
        assert stored.status_code == 200, stored.text
    return shared_server


def stow(server: LiveServer, body: bytes, ctype: str) -> requests.Response:
    return requests.post(f"{server.dicomweb}/studies", data=body, timeout=60,
                         headers={"Content-Type": ctype, "Accept": "application/dicom+json"})


OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3: the disk here has room, so never the reason


def assert_no_out_of_resources(response: requests.Response) -> None:
    """No instance failed as Out of Resources: bad metadata is Cannot Understand (C000)."""
    if response.headers.get("content-type", "").startswith("application/dicom+json"):
        items = response.json().get("00081198", {}).get("Value", [])
        reasons = [(i.get("00081197", {}).get("Value") or [0])[0] for i in items]
        assert OUT_OF_RESOURCES not in reasons, response.text[:500]


@LIVE
@given(metadata=json_instances())
@example(metadata=[{**instance(), "00100010": "not an element"}])
@example(metadata=[{**instance(), "00280010": {"vr": "US", "Value": [70000]}}])
def test_live_store_of_bent_json_never_answers_5xx(server: LiveServer, metadata: Any) -> None:
    text = json.dumps(metadata).encode()
    response = stow(server, with_pixels(text), JSON_TYPE)
    assert_no_server_error(response, f"a Store of {text[:500]!r}")
    assert_no_out_of_resources(response)


@LIVE
@given(document=xml_documents())
@example(document=xml_instance().replace(
    "</NativeDicomModel>", '<DicomAttribute tag="00081140" vr="SQ"><Value number="1">x'
    "</Value></DicomAttribute></NativeDicomModel>"))
def test_live_store_of_bent_xml_never_answers_5xx(server: LiveServer, document: str) -> None:
    text = document.encode("utf-8", "surrogatepass")
    response = stow(server, with_pixels(text, "application/dicom+xml"), XML_TYPE)
    assert_no_server_error(response, f"a Store of {text[:500]!r}")
    assert_no_out_of_resources(response)
