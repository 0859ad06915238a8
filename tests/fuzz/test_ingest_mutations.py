"""Part 10 ingest of mutated real files (bit flips, truncations, length, VR and tag mutations,
splices, and values that lie about the pixels): the header parser refuses with IngestError
only, and every span it records lies inside the file; a live server stores or refuses each
mutant without a 5xx, and whatever it stores it can then serve (metadata, frames, rendered,
transcoded) without a 5xx either."""

import random
from collections.abc import Callable
from io import BytesIO

import pydicom
import pytest
import requests
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from pacs.dicom.bulk_data import GOOGLE_BULK_DATA
from pacs.dicom.ingest import IngestError, part10_head, read_instance
from tests.conftest import LiveServer
from tests.dataset_factories import edited
from tests.fuzz.attacks import FOLLOW_UPS
from tests.fuzz.mutations import SOURCES, mutated, new_uids, source_bytes
from tests.fuzz.server_errors import assert_no_server_error, fail_cut_short

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UNIT = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIVE = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SOURCE_NAMES = st.sampled_from([*SOURCES, "generated"])


def as_part10(data: bytes) -> bytes:
    """What the server parses: `data`, given the preamble and meta header it lacks."""
    found = part10_head(BytesIO(data))
    if found is None:
        return data
    head, start = found
    return head + data[start:]


@UNIT
@given(name=SOURCE_NAMES, rng=st.randoms(use_true_random=False))
def test_mutated_files_are_read_or_refused_with_ingest_error(name: str,
                                                             rng: random.Random) -> None:
    data, notes = mutated(rng, source_bytes(name))
    note(f"{name}: {'; '.join(notes)}")
    try:
        data = as_part10(data)
        record = read_instance(BytesIO(data), GOOGLE_BULK_DATA)
    except IngestError:
        return
    size = len(data)
    for path, span in record.bulk.items():
        assert 0 <= span.offset and span.offset + span.length <= size, (path, span, size)
    for number, fragments in enumerate(record.frames, 1):
        for span in fragments:
            assert 0 <= span.offset and span.offset + span.length <= size, (number, span, size)


@UNIT
@given(name=SOURCE_NAMES, cut=st.integers(0, 100_000))
@example(name="JPEG-lossy.dcm", cut=864)  # inside a sequence item: pydicom raises OSError
def test_every_truncation_is_read_or_refused_with_ingest_error(name: str, cut: int) -> None:
    data = source_bytes(name)
    try:
        read_instance(BytesIO(as_part10(data[:cut % (len(data) + 1)])), GOOGLE_BULK_DATA)
    except IngestError:
        pass


class Client:
    """Requests to the live server, each on a new connection (so that a connection the
    server broke never fails a later example), checking every answer for a 5xx."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def request(self, method: str, url: str, what: str, **kwargs: object
                ) -> requests.Response:
        try:
            response = requests.request(method, url, timeout=120,
                                        **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:  # a response cut short: an error of ours
            fail_cut_short(exc, f"{method} {url} ({what})")
            raise
        assert_no_server_error(response, f"{method} {url} ({what})")
        return response


@pytest.fixture(scope="module")
def client(shared_server: LiveServer) -> Client:
    return Client(shared_server)


def stored_urls(response: requests.Response) -> list[str]:
    """The RetrieveURLs of a Store response's ReferencedSOPSequence."""
    if not response.headers.get("content-type", "").startswith("application/dicom+json"):
        return []
    items = response.json().get("00081199", {}).get("Value", [])
    return [item["00081190"]["Value"][0] for item in items if "00081190" in item]


@LIVE
@given(name=SOURCE_NAMES, rng=st.randoms(use_true_random=False),
       single=st.booleans())
def test_live_store_of_mutated_files_and_what_it_stored_never_answer_5xx(
        client: Client, name: str, rng: random.Random, single: bool) -> None:
    data, notes = mutated(rng, source_bytes(name), fresh_uids=True)
    what = f"{name}: {'; '.join(notes)}"
    note(what)
    if single:
        response = client.request("POST", f"{client.server.dicomweb}/studies", what, data=data,
                                  headers={"Content-Type": "application/dicom",
                                           "Accept": "application/dicom+json"})
    else:
        boundary = "mutated-part10"
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
                + f"\r\n--{boundary}--\r\n".encode())
        response = client.request(
            "POST", f"{client.server.dicomweb}/studies", what, data=body,
            headers={"Content-Type": f"multipart/related; type=application/dicom; "
                                     f"boundary={boundary}",
                     "Accept": "application/dicom+json"})
    for url in stored_urls(response):
        for resource, accept in FOLLOW_UPS:
            client.request("GET", url + resource, what, headers={"Accept": accept})


# -- files the fuzzing found the server could store but not serve ------------------------------

Edit = Callable[[bytes], bytes]
JPEG_LS = "1.2.840.10008.1.2.4.80"
INSTANCE_AS = "multipart/related; type=application/dicom; transfer-syntax={}"
FRAME_AS = "multipart/related; type={}"


def attributes(**changes: object) -> Edit:
    """Set attributes (keyword=value) through pydicom and write the file again."""
    return lambda data: edited(data, **changes)


def swap(old: bytes, new: bytes) -> Edit:
    """Replace the one occurrence of `old` (an element's tag and VR, say) by `new`."""
    def edit(data: bytes) -> bytes:
        assert data.count(old) == 1, old
        return data.replace(old, new)
    return edit


def private_creator_as_us(data: bytes) -> bytes:
    ds = pydicom.dcmread(BytesIO(data))
    ds.add_new(0x00190010, "US", 5)  # a private creator slot holding a number
    ds.add_new(0x00191001, "LO", "x")
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


# (source, edit, resource asked for, Accept): each stored, then asked for what broke it
KNOWN_BAD = {
    "TransferSyntaxUID as ST": ("CT_small.dcm", swap(b"\x02\x00\x10\x00UI",
                                                     b"\x02\x00\x10\x00ST"),
                                "", INSTANCE_AS.format(JPEG_LS)),
    "group length as CS": ("CT_small.dcm", swap(b"\x02\x00\x00\x00UL", b"\x02\x00\x00\x00CS"),
                           "", INSTANCE_AS.format(JPEG_LS)),
    "MediaStorageSOPInstanceUID as IS": (
        "SC_rgb_rle_2frame.dcm", swap(b"\x02\x00\x03\x00UI", b"\x02\x00\x03\x00IS"), "",
        INSTANCE_AS.format("1.2.840.10008.1.2.1")),
    "PhotometricInterpretation as SL": (
        "CT_small.dcm", swap(b"\x28\x00\x04\x00CS", b"\x28\x00\x04\x00SL"), "",
        INSTANCE_AS.format(JPEG_LS)),
    "trailing padding as FL": ("CT_small.dcm", swap(b"\xfc\xff\xfc\xffOB", b"\xfc\xff\xfc\xffFL"),
                               "", INSTANCE_AS.format(JPEG_LS)),
    "native Pixel Data as LO": ("CT_small.dcm", swap(b"\xe0\x7f\x10\x00OW",
                                                     b"\xe0\x7f\x10\x00LO"),
                                "/frames/1", FRAME_AS.format("application/octet-stream")),
    "encapsulated Pixel Data as UI": ("JPEG2000.dcm", swap(b"\xe0\x7f\x10\x00OB",
                                                           b"\xe0\x7f\x10\x00UI"),
                                      "", INSTANCE_AS.format("1.2.840.10008.1.2.1")),
    "RLE segment offset inside the frame": (
        "MR_small_RLE.dcm", swap(bytes.fromhex("02000000400000009c070000"),
                                 bytes.fromhex("020000004000000082070000")),
        "/frames/1", FRAME_AS.format("application/octet-stream")),
    "BitsAllocated 65535": ("CT_small.dcm", attributes(BitsAllocated=65535), "/rendered",
                            "image/jpeg"),
    "RLE BitsAllocated 65535": ("SC_rgb_rle_2frame.dcm", attributes(BitsAllocated=65535),
                                "/rendered", "image/jpeg"),
    "BitsAllocated 0": ("MR_small.dcm", attributes(BitsAllocated=0), "/frames/1",
                        FRAME_AS.format("image/jls")),
    "Columns 0, rendered": ("CT_small.dcm", attributes(Columns=0), "/rendered", "image/jpeg"),
    "Rows 0, JPEG-LS frame": ("CT_small.dcm", attributes(Rows=0), "/frames/1",
                              FRAME_AS.format("image/jls")),
    "Rows 0, JPEG 2000 frame": ("CT_small.dcm", attributes(Rows=0), "/frames/1",
                                FRAME_AS.format("image/jp2")),
    "Rows 0, RLE instance": ("CT_small.dcm", attributes(Rows=0), "",
                             INSTANCE_AS.format("1.2.840.10008.1.2.5")),
    "Rows 0, PNG frame": ("SC_ybr_full_422_uncompressed.dcm", attributes(Rows=0), "/frames/1",
                          FRAME_AS.format("image/png")),
    "Rows 0, JPEG instance": ("SC_ybr_full_422_uncompressed.dcm", attributes(Rows=0), "",
                              INSTANCE_AS.format("1.2.840.10008.1.2.4.50")),
    "Rows larger than the pixels": ("CT_small.dcm", attributes(Rows=1024), "/frames/1",
                                    FRAME_AS.format("application/octet-stream")),
    "SamplesPerPixel 2": ("SC_rgb_rle_2frame.dcm", attributes(SamplesPerPixel=2), "/rendered",
                          "image/jpeg"),
    "NumberOfFrames -1": ("SC_rgb_rle_2frame.dcm", attributes(NumberOfFrames="-1"),
                          "/rendered", "image/jpeg"),
    "BitsStored 12 in one row": ("rtdose.dcm", attributes(Rows=1, BitsStored=12), "/frames/1",
                                 FRAME_AS.format("image/jls")),
    "private creator as US": ("CT_small.dcm", private_creator_as_us, "/metadata",
                              'multipart/related; type="application/dicom+xml"'),
}


@pytest.mark.parametrize("case", KNOWN_BAD)
def test_live_known_bad_files_are_refused_or_served_without_5xx(client: Client,
                                                                case: str) -> None:
    """Each file is refused at ingest (409) or stored and served (or refused, 4xx): never a
    5xx. All of them were stored, then answered 500, when the fuzzing found them."""
    name, edit, resource, accept = KNOWN_BAD[case]
    data = edit(new_uids(random.Random(case), source_bytes(name)))
    response = client.request("POST", f"{client.server.dicomweb}/studies", case, data=data,
                              headers={"Content-Type": "application/dicom",
                                       "Accept": "application/dicom+json"})
    for url in stored_urls(response):
        client.request("GET", url + resource, case, headers={"Accept": accept})


def test_live_truncated_file_is_not_out_of_resources(client: Client) -> None:
    """A file cut inside a sequence item makes pydicom raise OSError ("No tag to read"): it
    cannot be understood (409, C000), the disk is not full (507, A700)."""
    data = new_uids(random.Random(0), source_bytes("JPEG-lossy.dcm"))
    cut = data[:864 + len(data) - len(source_bytes("JPEG-lossy.dcm"))]
    response = client.request("POST", f"{client.server.dicomweb}/studies", "truncated",
                              data=cut, headers={"Content-Type": "application/dicom",
                                                 "Accept": "application/dicom+json"})
    reasons = [item["00081197"]["Value"][0]
               for item in response.json().get("00081198", {}).get("Value", [])]
    assert reasons == [0xC000], response.text
