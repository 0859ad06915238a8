"""What the server answers (issue 9), held to PS3.18's text: search results carry the
attributes of the levels above theirs, metadata has no group lengths, and bulk data parts
say where they come from."""

import xml.etree.ElementTree as ET
from io import BytesIO

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.uid import generate_uid

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes
from tests.multipart_parts import parse_multipart

STUDY_DEFAULTS = ("00080020", "00080030", "00080050", "00080090", "00100010", "00100020",
                  "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208",
                  "00080061")
SERIES_DEFAULTS = ("00080060", "0008103E", "0020000E", "00200011", "00201209")


@pytest.fixture(scope="module")
def ct(shared_server: LiveServer) -> pydicom.Dataset:
    data = corpus_bytes("CT_small.dcm")
    response = requests.post(f"{shared_server.dicomweb}/studies", data=data,
                             headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200
    return pydicom.dcmread(BytesIO(data))


def _only(url: str) -> dict[str, dict[str, object]]:
    response = requests.get(url)
    assert response.status_code == 200, response.text
    [found] = response.json()
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("resource, levels", [
    ("/series", (STUDY_DEFAULTS,)),
    ("/instances", (STUDY_DEFAULTS, SERIES_DEFAULTS)),
    ("/studies/{study}/instances", (SERIES_DEFAULTS,)),
])
def test_results_carry_the_levels_above(shared_server: LiveServer, ct: pydicom.Dataset,
                                        resource: str, levels: tuple[tuple[str, ...]]) -> None:
    """PS3.18 10.6.3.3: all series carry the study's default attributes, all instances the
    study's and the series', a study's instances the series'."""
    url = (f"{shared_server.dicomweb}{resource.format(study=ct.StudyInstanceUID)}"
           f"?SOPInstanceUID={ct.SOPInstanceUID}" if "instances" in resource else
           f"{shared_server.dicomweb}{resource}?SeriesInstanceUID={ct.SeriesInstanceUID}")
    found = _only(url)
    for keys in levels:
        assert [key for key in keys if key not in found] == []
    if STUDY_DEFAULTS in levels:
        assert found["00100010"]["Value"] == [{"Alphabetic": str(ct.PatientName)}]
        assert found["00080020"]["Value"] == [ct.StudyDate]
        assert found["00201208"]["Value"] == [1] and found["00080061"]["Value"] == ["CT"]
    if SERIES_DEFAULTS in levels:
        assert found["00080060"]["Value"] == ["CT"] and found["00201209"]["Value"] == [1]


def test_search_of_a_series_instances_stays_at_instance_level(shared_server: LiveServer,
                                                              ct: pydicom.Dataset) -> None:
    found = _only(f"{shared_server.dicomweb}/studies/{ct.StudyInstanceUID}/series/"
                  f"{ct.SeriesInstanceUID}/instances")
    assert "00100010" not in found and "00201208" not in found
    assert found["00081190"]["Value"][0].endswith(f"/instances/{ct.SOPInstanceUID}")


def test_metadata_has_no_group_lengths(shared_server: LiveServer) -> None:
    """PS3.18 F.2: group length elements (gggg,0000) are not in the JSON model, neither in
    the file meta nor in the data set, even when the stored file has them (pydicom leaves
    (0008,0000) out when it writes, so it is put into the bytes here)."""
    ds = pydicom.dcmread(BytesIO(corpus_bytes("MR_small.dcm", sop_uid=generate_uid())))
    sent = BytesIO()
    ds.save_as(sent, enforce_file_format=True)
    data = sent.getvalue()
    meta_end = 144 + int.from_bytes(data[140:144], "little")  # after (0002,0000)'s value
    assert data[meta_end:meta_end + 2] == b"\x08\x00"  # the data set starts in group 0008
    data = data[:meta_end] + b"\x08\x00\x00\x00UL\x04\x00\xc8\x00\x00\x00" + data[meta_end:]
    assert 0x00080000 in pydicom.dcmread(BytesIO(data))  # what is sent has one
    assert requests.post(f"{shared_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).status_code == 200
    url = (f"{shared_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
           f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    for body in (requests.get(f"{url}/metadata").json()[0],
                 _only(f"{shared_server.dicomweb}/instances?includefield=all"
                       f"&SOPInstanceUID={ds.SOPInstanceUID}")):
        assert [key for key in body if key.endswith("0000")] == []
        assert body["00020010"]["Value"] and body["00080018"]["Value"] == [ds.SOPInstanceUID]


def test_a_bulk_data_part_says_where_it_comes_from(shared_server: LiveServer,
                                                   ct: pydicom.Dataset) -> None:
    """PS3.18 8.6.1.2: each part of a multipart bulk data response has Content-Location."""
    url = (f"{shared_server.dicomweb}/studies/{ct.StudyInstanceUID}/series/"
           f"{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/bulkdata/7FE00010")
    response = requests.get(url)
    assert response.status_code == 200
    [(headers, body)] = parse_multipart(response)
    assert headers["content-location"] == url
    assert body == ct.PixelData


@pytest.mark.parametrize("params, found", [
    ({"PatientName": "гусева*"}, "Гусева^Анна"),
    ({"PatientName": "ГУСЕВА^АННА"}, "Гусева^Анна"),
    ({"PatientName": "buc^jérôme"}, "BUC^JÉRÔME"),
    ({"PatientName": "BUC^J*"}, "BUC^JÉRÔME"),
    ({"PatientName": "jér", "fuzzymatching": "true"}, "BUC^JÉRÔME"),
    ({"PatientName": "straße*"}, "STRASSE^HANS"),
    ({"ReferringPhysicianName": "élodie*"}, "Гусева^Анна"),
    ({"StudyDescription": "*тело*"}, "Гусева^Анна"),
])
def test_names_match_regardless_of_case_beyond_ascii(shared_server: LiveServer,
                                                     params: dict[str, str],
                                                     found: str) -> None:
    """SQLite's NOCASE and LIKE fold ASCII only; names are matched with Unicode case
    folding (str.casefold: ß matches ss too)."""
    for name in ("Гусева^Анна", "BUC^JÉRÔME", "STRASSE^HANS"):
        ds = pydicom.dcmread(BytesIO(corpus_bytes("MR_small.dcm", sop_uid=generate_uid())))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName, ds.PatientID = name, "UNICODE-FOLD"
        ds.ReferringPhysicianName = "ÉLODIE^M" if name.startswith("Г") else "OTHER"
        ds.StudyDescription = "ВСЁ ТЕЛО" if name.startswith("Г") else "BRAIN"
        sent = BytesIO()
        ds.save_as(sent, enforce_file_format=True)
        requests.post(f"{shared_server.dicomweb}/studies", data=sent.getvalue(),
                      headers={"Content-Type": "application/dicom"}).raise_for_status()
    response = requests.get(f"{shared_server.dicomweb}/studies",
                            params={**params, "PatientID": "UNICODE-FOLD",
                                    "includefield": "StudyDescription"})
    assert response.status_code == 200, response.text
    names = {study["00100010"]["Value"][0]["Alphabetic"] for study in response.json()}
    assert names == {found}


XML_ACCEPT = 'multipart/related; type="application/dicom+xml"'
NATIVE = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"


def _xml_parts(response: requests.Response) -> list[ET.Element]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/related")
    parts = parse_multipart(response)
    assert all(h["content-type"] == "application/dicom+xml" for h, _ in parts)
    return [ET.fromstring(body) for _, body in parts]


def _xml_value(root: ET.Element, tag: str) -> str | None:
    return root.findtext(f"./{NATIVE}DicomAttribute[@tag='{tag}']/{NATIVE}Value")


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_metadata_as_native_dicom_xml(shared_server: LiveServer, ct: pydicom.Dataset,
                                      level: str) -> None:
    """PS3.18 10.4.1.2 requires multipart/related; type="application/dicom+xml" metadata:
    one PS3.19 Native DICOM Model document per instance."""
    url = f"{shared_server.dicomweb}/studies/{ct.StudyInstanceUID}"
    if level != "study":
        url += f"/series/{ct.SeriesInstanceUID}"
    if level == "instance":
        url += f"/instances/{ct.SOPInstanceUID}"
    [root] = _xml_parts(requests.get(f"{url}/metadata", headers={"Accept": XML_ACCEPT}))
    assert root.tag == f"{NATIVE}NativeDicomModel"
    assert _xml_value(root, "00080018") == ct.SOPInstanceUID
    bulk = root.find(f"./{NATIVE}DicomAttribute[@tag='7FE00010']/{NATIVE}BulkData")
    assert bulk is not None and bulk.get("uri") == f"{url.split('/studies/')[0]}/studies/" \
        f"{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/" \
        f"{ct.SOPInstanceUID}/bulkdata/7FE00010"


def test_search_as_native_dicom_xml(shared_server: LiveServer, ct: pydicom.Dataset) -> None:
    """PS3.18 10.6.3.2: a search answers multipart Native DICOM Model XML when asked."""
    url = f"{shared_server.dicomweb}/studies?StudyInstanceUID={ct.StudyInstanceUID}"
    [root] = _xml_parts(requests.get(url, headers={"Accept": XML_ACCEPT}))
    assert _xml_value(root, "0020000D") == ct.StudyInstanceUID
    assert _xml_value(root, "00201208") == "1"


def test_a_private_attribute_comes_with_its_creator(shared_server: LiveServer,
                                                    ct: pydicom.Dataset) -> None:
    """PS3.5 7.8.1: a private data element means nothing without its Private Creator;
    CT_small.dcm holds GEMS blocks, e.g. (0043,1028) under (0043,0010)."""
    creator = ct[0x00430010].value
    found = _only(f"{shared_server.dicomweb}/instances?SOPInstanceUID={ct.SOPInstanceUID}"
                  "&includefield=00431028&includefield=00091001")
    assert found["00430010"] == {"vr": "LO", "Value": [creator]}
    assert "00431028" in found
    assert found["00090010"]["Value"] == [ct[0x00090010].value]


def big_endian_rgb() -> tuple[bytes, np.ndarray]:
    """An 8-bit RGB image in Explicit VR Big Endian, Pixel Data OB as pydicom writes it."""
    ds = pydicom.dcmread(BytesIO(corpus_bytes("MR_small_bigendian.dcm",
                                              sop_uid=generate_uid())))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    rgb = np.zeros((6, 5, 3), np.uint8)
    rgb[..., 0] = np.arange(30, dtype=np.uint8).reshape(6, 5) * 8
    rgb[..., 1], rgb[..., 2] = 200, np.arange(5, dtype=np.uint8) * 50
    for keyword in ("WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"):
        ds.pop(keyword, None)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 6, 5, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = rgb.tobytes()
    ds["PixelData"].VR = "OB"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    return out.getvalue(), rgb


def test_big_endian_8_bit_colour_frames_and_rendered(shared_server: LiveServer) -> None:
    """Frames of an 8-bit big endian image (OB: nothing to swap) come back exactly, and it
    renders with its own colours; the frame path assumed OW and swapped byte pairs."""
    data, rgb = big_endian_rgb()
    ds = pydicom.dcmread(BytesIO(data))
    assert requests.post(f"{shared_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).status_code == 200
    url = (f"{shared_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
           f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    response = requests.get(f"{url}/frames/1")
    assert "transfer-syntax=1.2.840.10008.1.2.1" in response.headers["content-type"]
    [(_, frame)] = parse_multipart(response)
    assert frame == rgb.tobytes()
    png = requests.get(f"{url}/rendered", headers={"Accept": "image/png"})
    assert np.array_equal(np.asarray(Image.open(BytesIO(png.content)).convert("RGB")), rgb)


def test_big_endian_bulk_data_in_little_endian_with_ranges(shared_server: LiveServer,
                                                           ) -> None:
    """A big endian 16-bit Pixel Data goes out little endian, labelled so, a byte range of
    it too (starting inside a word)."""
    data = corpus_bytes("MR_small_bigendian.dcm", sop_uid=generate_uid())
    ds = pydicom.dcmread(BytesIO(data))
    assert requests.post(f"{shared_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).status_code == 200
    little = ds.pixel_array.astype("<i2").tobytes()
    url = (f"{shared_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
           f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010")
    whole = requests.get(url, headers={"Accept": "multipart/related; "
                                                 "type=application/octet-stream"})
    assert whole.status_code == 200
    [(headers, body)] = parse_multipart(whole)
    assert body == little and "1.2.840.10008.1.2.1" in headers["content-type"]
    for first, last in ((1, 6), (3, 3), (0, len(little) - 1), (len(little) - 3, None)):
        asked = f"bytes={first}-{'' if last is None else last}"
        part = requests.get(url, headers={"Accept": "application/octet-stream; "
                                          "transfer-syntax=*", "Range": asked})
        assert part.status_code == 206, asked
        assert part.content == little[first:None if last is None else last + 1], asked
