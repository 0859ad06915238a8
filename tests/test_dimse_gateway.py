"""The DICOM gateway (issue 16, first part): `pacs serve --dimse-port` answers C-ECHO and
C-STORE beside HTTP, writing through the same service layer as STOW. dcmtk's echoscu and
storescu and pynetdicom are the peers; what they store is found by QIDO and retrieved by
WADO-RS; who may associate, bad datasets and many associations at once."""

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    ModalityWorklistInformationFind,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.dataset_factories import ct_datasets
from tests.served_process import Served, free_port, served

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UNCOMPRESSED = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm"]  # what storescu sends as is
COMPRESSED = ["JPEG2000.dcm", "SC_rgb_rle.dcm", "MR_small_jpeg_ls_lossless.dcm",
              "SC_rgb_jpeg_dcmtk.dcm"]  # (each SOP Instance UID once)
AS_STORED = {"Accept": "application/dicom; transfer-syntax=*"}


def dcmtk(tool: str) -> str:
    """dcmtk's `tool` (pynetdicom's apps of the same names may come first on PATH)."""
    for found in (f"/usr/bin/{tool}", shutil.which(tool)):
        if found and Path(found).exists() and "DCMTK" in subprocess.run(
                [found, "--version"], capture_output=True, text=True, check=False).stdout.upper():
            return found
    reason = f"dcmtk's {tool} is missing: apt-get install dcmtk (.ci/run does)"
    if os.environ.get("PACS_REQUIRE_DCMTK"):
        pytest.fail(reason)
    pytest.skip(reason)


class Gateway:
    """A running `pacs serve` and its DICOM port."""

    def __init__(self, server: Served, port: int) -> None:
        self.server, self.port = server, port

    @property
    def dicomweb(self) -> str:
        return f"{self.server.base}/dicomweb"

    def instances(self) -> list[str]:
        answer = requests.get(f"{self.dicomweb}/instances", params={"limit": 1000}, timeout=30)
        return [] if answer.status_code == 204 else [
            i["00080018"]["Value"][0] for i in answer.json()]


@contextlib.contextmanager
def gateway(data: Path, *args: str) -> Iterator[Gateway]:
    port = free_port()
    with served("--data", str(data), "--workers", "1", "--dimse-port", str(port),
                *args) as server:
        deadline = time.monotonic() + 30
        while True:  # the gateway's process opens its port a moment after HTTP's
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            assert time.monotonic() < deadline, "the DICOM port never opened"
            time.sleep(0.1)
        yield Gateway(server, port)


@pytest.fixture
def open_gateway(tmp_path: Path) -> Iterator[Gateway]:
    with gateway(tmp_path / "data") as running:
        yield running


def association(port: int, calling: str = "TESTSCU", called: str = "PACS") -> AE:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StorageCommitmentPushModel)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_echoscu_and_a_folder_from_storescu_reach_dicomweb(tmp_path: Path,
                                                            open_gateway: Gateway) -> None:
    """A folder sent by dcmtk's storescu is found by QIDO, and WADO-RS gives back each
    instance's data set as sent (values and transfer syntax)."""
    port = str(open_gateway.port)
    echo = subprocess.run([dcmtk("echoscu"), "-aec", "PACS", "127.0.0.1", port],
                          capture_output=True, text=True, timeout=60, check=False)
    assert echo.returncode == 0, echo.stderr
    folder = tmp_path / "folder"
    originals = {}
    for number, name in enumerate(UNCOMPRESSED):
        source = Path(get_testdata_file(name, download=False) or "")
        (folder / str(number)).mkdir(parents=True)
        shutil.copy(source, folder / str(number) / name)  # subfolders: +r recurses
        ds = pydicom.dcmread(source)
        originals[ds.SOPInstanceUID] = ds
    sent = subprocess.run([dcmtk("storescu"), "-aec", "PACS", "+sd", "+r", "127.0.0.1", port,
                           str(folder)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sorted(open_gateway.instances()) == sorted(originals)
    assert_kept(open_gateway, originals)


def test_compressed_instances_are_kept_in_the_syntax_they_came_in(
        open_gateway: Gateway) -> None:
    """pynetdicom proposes each dataset's own transfer syntax; the archive keeps it, and
    WADO-RS gives the same compressed pixel data back."""
    originals = {}
    ae = AE(ae_title="MODALITY")
    for name in COMPRESSED:
        ds = pydicom.dcmread(get_testdata_file(name, download=False) or "")
        originals[ds.SOPInstanceUID] = ds
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", open_gateway.port, ae_title="PACS")
    assert assoc.is_established
    try:
        for ds in originals.values():
            assert assoc.send_c_store(ds).Status == 0x0000, ds.SOPInstanceUID
    finally:
        assoc.release()
    assert_kept(open_gateway, originals)


def assert_kept(gateway: Gateway, originals: dict[str, Dataset]) -> None:
    """Each instance retrieved by WADO-RS is the data set sent, in its transfer syntax."""
    for sop, original in originals.items():
        answer = requests.get(f"{gateway.dicomweb}/studies/{original.StudyInstanceUID}/"
                              f"series/{original.SeriesInstanceUID}/instances/{sop}",
                              headers=AS_STORED, timeout=30)
        assert answer.status_code == 200, answer.text
        back = pydicom.dcmread(BytesIO(answer.content))
        assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, sop
        for ds in (original, back):  # Data Set Trailing Padding: dcmtk drops it in transit
            ds.pop(0xFFFCFFFC, None)
        differ = [e.keyword or str(e.tag) for e in original
                  if e.tag not in back or back[e.tag].value != e.value]
        assert not differ and len(back) == len(original), (sop, differ)


def test_the_same_instance_twice_is_a_success_and_changed_content_a_failure(
        open_gateway: Gateway) -> None:
    """STOW's duplicate and conflict rules: the same bytes again succeed and change nothing;
    other content under a stored SOP Instance UID is refused with STOW's failure status."""
    [ds] = ct_datasets(1, 8, "DUP^TEST")
    assoc = association(open_gateway.port)
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ds).Status == 0x0000
        assert assoc.send_c_store(ds).Status == 0x0000
        ds.PatientName = "OTHER^NAME"
        assert assoc.send_c_store(ds).Status == 0x0110
    finally:
        assoc.release()
    assert open_gateway.instances() == [ds.SOPInstanceUID]
    found = requests.get(f"{open_gateway.dicomweb}/instances",
                         params={"PatientName": "DUP^TEST"}, timeout=30).json()
    assert len(found) == 1  # the first content stands


def test_a_study_stored_by_stow_sent_again_by_c_store_is_a_duplicate(
        open_gateway: Gateway) -> None:
    """A modality sending again what an AI tool stored by STOW-RS, in the same transfer
    syntax: pynetdicom writes its own File Meta Information, the data set is the same, so
    each C-STORE succeeds and the instances stay as STOW stored them."""
    series = ct_datasets(3, 8, "SENT^TWICE")
    for ds in series:
        ds.file_meta.ImplementationVersionName = "AI_PIPELINE_1"  # not what pynetdicom writes
    stow(open_gateway, series)
    before = {ds.SOPInstanceUID: instance_bytes(open_gateway, ds) for ds in series}
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)  # as stored
    assoc = ae.associate("127.0.0.1", open_gateway.port, ae_title="PACS")
    assert assoc.is_established
    try:
        assert [assoc.send_c_store(ds).Status for ds in series] == [0x0000] * 3
    finally:
        assoc.release()
    assert sorted(open_gateway.instances()) == sorted(before)
    assert {ds.SOPInstanceUID: instance_bytes(open_gateway, ds) for ds in series} == before


def instance_bytes(gateway: Gateway, ds: Dataset) -> bytes:
    answer = requests.get(f"{gateway.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
                          f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
                          headers=AS_STORED, timeout=30)
    assert answer.status_code == 200
    return answer.content


def test_a_dataset_that_cannot_be_read_is_refused_and_stores_nothing(
        tmp_path: Path, open_gateway: Gateway) -> None:
    """A C-STORE whose data set is not DICOM (garbage bytes after valid File Meta, sent as
    they are) gets 0xC000 (cannot understand) and leaves nothing stored; the association
    goes on."""
    [good] = ct_datasets(1, 8, "AFTER^BAD")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, "1.2.3.4"
    meta.TransferSyntaxUID = ImplicitVRLittleEndian  # what the association accepted
    garbage = tmp_path / "garbage.dcm"
    with garbage.open("wb") as out:
        out.write(bytes(128) + b"DICM")
        write_file_meta_info(DicomFileLike(out), meta)  # type: ignore[no-untyped-call]
        out.write(b"\x08\x00\x18\x00UI\xff\x7f" + bytes(range(256)) * 4)
    assoc = association(open_gateway.port)
    try:
        _config.STORE_SEND_CHUNKED_DATASET = True  # the file's bytes, not re-encoded
        status = assoc.send_c_store(garbage)
        _config.STORE_SEND_CHUNKED_DATASET = False
        assert status.Status == 0xC000, hex(status.Status)
        assert assoc.send_c_store(good).Status == 0x0000
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    assert open_gateway.instances() == [good.SOPInstanceUID]


def cutting_proxy(target: int, cut_after: int) -> int:
    """A loopback port forwarding one connection to `target` until `cut_after` bytes have
    gone that way, then dropping both sides, as a network that fails mid-transfer."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source: socket.socket, sink: socket.socket, limit: float) -> None:
        moved = 0
        with contextlib.suppress(OSError):
            while moved < limit and (data := source.recv(65536)):
                sink.sendall(data)
                moved += len(data)
        for side in (source, sink):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(upstream, client, float("inf")),
                         daemon=True).start()
        pump(client, upstream, cut_after)
    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def test_a_dropped_association_leaves_no_partial_instance(tmp_path: Path) -> None:
    """The network drops after 1 MB of a 64 MiB data set: nothing is stored, and the part
    that arrived is removed (the sweep's age is twice the 1 s network timeout here)."""
    [big] = ct_datasets(1, 8, "DROPPED^MIDWAY")
    big.Rows = big.Columns = 2048
    big.PixelData = bytes(2048 * 2048 * 2) * 8  # 64 MiB
    big.NumberOfFrames = 8
    with gateway(tmp_path / "data", "--dimse-timeout-seconds", "1") as running:
        assoc = association(cutting_proxy(running.port, 1024**2))
        assert assoc.is_established
        sender = threading.Thread(target=assoc.send_c_store, args=(big,), daemon=True)
        sender.start()
        incoming = tmp_path / "data" / "dimse-incoming"  # a folder per gateway process

        def arriving() -> list[Path]:
            return [path for path in incoming.rglob("*") if path.is_file()]
        deadline = time.monotonic() + 30
        while not arriving():  # the data set has started to arrive
            assert time.monotonic() < deadline
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while arriving():
            assert time.monotonic() < deadline, arriving()
            time.sleep(0.2)
        assert running.instances() == []
        later = association(running.port)  # the gateway serves on
        assert later.send_c_echo().Status == 0x0000
        later.release()


def test_two_hundred_c_stores_from_eight_associations_lose_nothing(tmp_path: Path) -> None:
    """Three gateway processes share the port and the archive."""
    with gateway(tmp_path / "data", "--dimse-processes", "3") as running:
        stored_from_eight_associations(running)


def stored_from_eight_associations(open_gateway: Gateway) -> None:
    datasets = ct_datasets(200, 16, "MANY^ASSOCIATIONS")
    statuses: list[int] = []
    errors: list[str] = []

    def send(share: list[Dataset]) -> None:
        assoc = association(open_gateway.port, calling=f"SCU{len(share)}")
        if not assoc.is_established:
            errors.append("not established")
            return
        try:
            for ds in share:
                status = assoc.send_c_store(ds)
                statuses.append(int(status.Status) if status else -1)
        finally:
            assoc.release()
    threads = [threading.Thread(target=send, args=(datasets[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and statuses == [0] * 200
    assert sorted(open_gateway.instances()) == sorted(ds.SOPInstanceUID for ds in datasets)


def stow(gateway: Gateway, datasets: list[Dataset]) -> None:
    """Store by STOW-RS, as an AI tool would."""
    for ds in datasets:
        out = BytesIO()
        ds.save_as(out, enforce_file_format=True)
        answer = requests.post(f"{gateway.dicomweb}/studies", data=out.getvalue(), timeout=30,
                               headers={"Content-Type": "application/dicom"})
        assert answer.status_code == 200, answer.text


def c_find(port: int, level: str, model: str = "S", **keys: object) -> list[Dataset]:
    """The identifiers a C-FIND at `level` answers (pynetdicom as the SCU)."""
    ae = AE(ae_title="FINDSCU")
    context = {"S": StudyRootQueryRetrieveInformationModelFind,
               "P": PatientRootQueryRetrieveInformationModelFind}[model]
    ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    try:
        answers = list(assoc.send_c_find(identifier, context))
    finally:
        assoc.release()
    *pending, (final, _) = answers
    assert final.Status == 0x0000, final
    assert all(status.Status == 0xFF00 for status, _ in pending)
    return [found for _, found in pending]


def test_c_find_matches_what_stow_stored_as_qido_does(open_gateway: Gateway) -> None:
    """Studies stored by STOW-RS are found by C-FIND at every level with QIDO's matching: a
    lower-case wildcard finds a name in any case, the computed attributes are there, and
    each answer holds the keys asked for and no others."""
    muller = ct_datasets(3, 8, "MÜLLER^Jürgen", AccessionNumber="A100", StudyDescription="Knee")
    other = ct_datasets(2, 8, "SMITH^ANNA", AccessionNumber="B200", PatientID="P2")
    stow(open_gateway, muller + other)
    [study] = c_find(open_gateway.port, "STUDY", PatientName="müller*", StudyInstanceUID="",
                     ModalitiesInStudy="", NumberOfStudyRelatedInstances="",
                     AccessionNumber="")
    assert study.StudyInstanceUID == muller[0].StudyInstanceUID
    assert study.ModalitiesInStudy == "CT" and study.NumberOfStudyRelatedInstances == 3
    assert study.AccessionNumber == "A100" and str(study.PatientName) == "MÜLLER^Jürgen"
    assert {e.keyword for e in study} == {"SpecificCharacterSet", "QueryRetrieveLevel",
                                          "PatientName", "StudyInstanceUID",
                                          "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                                          "AccessionNumber"}
    series = c_find(open_gateway.port, "SERIES", StudyInstanceUID=other[0].StudyInstanceUID,
                    SeriesInstanceUID="", Modality="")
    assert [s.SeriesInstanceUID for s in series] == [other[0].SeriesInstanceUID]
    images = c_find(open_gateway.port, "IMAGE", StudyInstanceUID=muller[0].StudyInstanceUID,
                    SeriesInstanceUID=muller[0].SeriesInstanceUID, SOPInstanceUID="",
                    InstanceNumber="")
    assert sorted(i.SOPInstanceUID for i in images) == sorted(d.SOPInstanceUID for d in muller)
    patients = c_find(open_gateway.port, "PATIENT", "P", PatientName="*", PatientID="")
    assert sorted(p.PatientID for p in patients) == sorted({muller[0].PatientID, "P2"})
    assert c_find(open_gateway.port, "STUDY", AccessionNumber="C*", StudyInstanceUID="") == []


def test_findscu_finds_a_study_and_a_bad_identifier_is_refused(tmp_path: Path,
                                                               open_gateway: Gateway) -> None:
    stow(open_gateway, ct_datasets(1, 8, "FIND^ME", StudyDescription="Chest"))
    found = subprocess.run(
        [dcmtk("findscu"), "-aec", "PACS", "-S", "-k", "QueryRetrieveLevel=STUDY",
         "-k", "PatientName=find*", "-k", "StudyDescription", "-k", "StudyInstanceUID",
         "-X", "--output-directory", str(tmp_path), "127.0.0.1", str(open_gateway.port)],
        capture_output=True, text=True, timeout=60, check=False)
    assert found.returncode == 0, found.stderr
    [answer] = [pydicom.dcmread(path) for path in tmp_path.glob("rsp*.dcm")]
    assert answer.StudyDescription == "Chest" and str(answer.PatientName) == "FIND^ME"
    refused = c_find_status(open_gateway.port, "WARD", PatientName="*")
    assert refused.Status == 0xA900 and "QueryRetrieveLevel" in refused.ErrorComment
    bad_uid = c_find_status(open_gateway.port, "STUDY", StudyInstanceUID="1.2.abc")
    assert bad_uid.Status == 0xA900 and "UID" in bad_uid.ErrorComment


def c_find_status(port: int, level: str, **keys: object) -> Dataset:
    """The final status of a C-FIND expected to fail."""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    try:
        [(status, _)] = list(assoc.send_c_find(identifier,
                                               StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    return status


def keeper(received: list[Dataset]) -> Callable[[Any], int]:
    """An EVT_C_STORE handler keeping what it receives (with its File Meta)."""
    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000
    return on_store


def c_get(port: int, syntaxes: list[str], sop_class: str = CTImageStorage,
          **keys: object) -> tuple[list[Dataset], Dataset]:
    """What a C-GET (Study Root) brings back over its association, received in one of
    `syntaxes`, and its final response (pynetdicom as the SCU and storage SCP)."""
    received: list[Dataset] = []
    on_store = keeper(received)
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(sop_class, syntaxes)
    role = build_role(sop_class, scp_role=True)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS", ext_neg=[role],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    try:
        *_, (final, _) = list(assoc.send_c_get(identifier,
                                               StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    return received, final


def test_c_get_sends_a_series_back_as_stored_or_transcoded(open_gateway: Gateway) -> None:
    """A series stored by STOW-RS comes back by C-GET: as stored when the peer takes that
    syntax, transcoded to one it takes otherwise, pixel for pixel; an unknown UID is a
    failure naming nothing sent."""
    series = ct_datasets(4, 16, "GET^SERIES")
    stow(open_gateway, series)
    keys = {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": series[0].StudyInstanceUID,
            "SeriesInstanceUID": series[0].SeriesInstanceUID}
    received, final = c_get(open_gateway.port, [ExplicitVRLittleEndian], **keys)
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 4
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(
        ds.SOPInstanceUID for ds in series)
    by_uid = {ds.SOPInstanceUID: ds for ds in series}
    assert all(ds.PixelData == by_uid[ds.SOPInstanceUID].PixelData for ds in received)
    lossless, final = c_get(open_gateway.port, [RLELossless], **keys)  # stored: Explicit LE
    assert final.Status == 0x0000 and len(lossless) == 4
    assert all(ds.file_meta.TransferSyntaxUID == RLELossless for ds in lossless)
    assert all((ds.pixel_array == by_uid[ds.SOPInstanceUID].pixel_array).all()
               for ds in lossless)
    none, final = c_get(open_gateway.port, [ExplicitVRLittleEndian],
                        QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3.999")
    assert none == [] and final.Status == 0x0000
    refused = c_get(open_gateway.port, [ExplicitVRLittleEndian], QueryRetrieveLevel="SERIES")[1]
    assert refused.Status == 0xA900


def test_getscu_retrieves_a_series(tmp_path: Path, open_gateway: Gateway) -> None:
    series = ct_datasets(3, 16, "GETSCU^SERIES")
    stow(open_gateway, series)
    out = tmp_path / "out"
    out.mkdir()
    got = subprocess.run(
        [dcmtk("getscu"), "-aec", "PACS", "-S", "-k", "QueryRetrieveLevel=SERIES",
         "-k", f"StudyInstanceUID={series[0].StudyInstanceUID}",
         "-k", f"SeriesInstanceUID={series[0].SeriesInstanceUID}",
         "--output-directory", str(out), "127.0.0.1", str(open_gateway.port)],
        capture_output=True, text=True, timeout=60, check=False)
    assert got.returncode == 0, got.stderr
    files = {pydicom.dcmread(path).SOPInstanceUID: pydicom.dcmread(path)
             for path in out.iterdir()}
    assert sorted(files) == sorted(ds.SOPInstanceUID for ds in series)
    assert all(files[ds.SOPInstanceUID].PixelData == ds.PixelData for ds in series)


@contextlib.contextmanager
def storage_scp(title: str, syntaxes: list[str]) -> Iterator[tuple[int, list[Dataset]]]:
    """A second SCP (pynetdicom) receiving C-MOVE's instances in one of `syntaxes`."""
    received: list[Dataset] = []
    on_store = keeper(received)
    ae = AE(ae_title=title)
    ae.add_supported_context(CTImageStorage, syntaxes)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield port, received
    finally:
        server.shutdown()


def test_movescu_moves_what_stow_stored_to_a_second_scp(tmp_path: Path) -> None:
    """What STOW-RS stored is moved by dcmtk's movescu to a known peer: as stored where it
    takes that syntax, transcoded where it takes only another; an unknown destination is
    0xA801 and sends nothing."""
    series = ct_datasets(3, 16, "MOVE^ME")
    with storage_scp("DEST", [ExplicitVRLittleEndian]) as (port, received), \
            storage_scp("RLEONLY", [RLELossless]) as (rle_port, rle_received), \
            gateway(tmp_path / "data", "--dimse-peer", f"DEST@127.0.0.1:{port}",
                    "--dimse-peer", f"RLEONLY@127.0.0.1:{rle_port}",
                    "--dimse-peer", "MOVESCU@127.0.0.1:104") as running:
        stow(running, series)
        for destination in ("DEST", "RLEONLY", "NOWHERE"):
            moved = subprocess.run(
                [dcmtk("movescu"), "-aet", "MOVESCU", "-aec", "PACS", "-aem", destination,
                 "-S", "-k", "QueryRetrieveLevel=SERIES",
                 "-k", f"StudyInstanceUID={series[0].StudyInstanceUID}",
                 "-k", f"SeriesInstanceUID={series[0].SeriesInstanceUID}",
                 "127.0.0.1", str(running.port)],
                capture_output=True, text=True, timeout=60, check=False)
            assert (moved.returncode == 0) == (destination != "NOWHERE"), moved.stderr
    by_uid = {ds.SOPInstanceUID: ds for ds in series}
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(by_uid)
    assert all(ds.PixelData == by_uid[ds.SOPInstanceUID].PixelData for ds in received)
    assert all(ds.file_meta.TransferSyntaxUID == RLELossless for ds in rle_received)
    assert sorted(ds.SOPInstanceUID for ds in rle_received) == sorted(by_uid)
    assert all((ds.pixel_array == by_uid[ds.SOPInstanceUID].pixel_array).all()
               for ds in rle_received)
    assert "C-MOVE from MOVESCU@127.0.0.1 to 'NOWHERE' refused" in running.server.output


def worklist_item(patient: str, accession: str, modality: str, date: str) -> str:
    item = Dataset()
    item.PatientName, item.PatientID, item.AccessionNumber = patient, f"ID-{accession}", accession
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = modality, "CT1"
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = date, "0900"
    step.ScheduledProcedureStepDescription = f"{modality} scan"
    item.ScheduledProcedureStepSequence = [step]
    return item.to_json()


def test_a_worklist_item_is_found_by_a_worklist_c_find(tmp_path: Path) -> None:
    """Worklist items are DICOM JSON files in --worklist DIR; findscu -W and pynetdicom find
    them by name (any case), by modality and date range inside the scheduled step, and a file
    added later is found at once; a file that is not DICOM JSON is skipped."""
    folder = tmp_path / "worklist"
    folder.mkdir()
    (folder / "a.json").write_text(worklist_item("Doe^Jane", "ACC1", "CT", "20261204"))
    (folder / "b.json").write_text(worklist_item("Roe^Rick", "ACC2", "MR", "20261205"))
    (folder / "broken.json").write_text("{not json")
    with gateway(tmp_path / "data", "--worklist", str(folder)) as running:
        out = tmp_path / "answers"
        out.mkdir()
        found = subprocess.run(
            [dcmtk("findscu"), "-aec", "PACS", "-W", "-k", "PatientName=doe*",
             "-k", "AccessionNumber", "-k", "(0040,0100)[0].Modality=CT",
             "-k", "(0040,0100)[0].ScheduledProcedureStepStartDate=20261201-20261231",
             "-X", "--output-directory", str(out), "127.0.0.1", str(running.port)],
            capture_output=True, text=True, timeout=60, check=False)
        assert found.returncode == 0, found.stderr
        [answer] = [pydicom.dcmread(path) for path in out.glob("rsp*.dcm")]
        assert answer.AccessionNumber == "ACC1"
        assert answer.ScheduledProcedureStepSequence[0].Modality == "CT"
        (folder / "c.json").write_text(worklist_item("Doe^John", "ACC3", "CT", "20261206"))
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", running.port, ae_title="PACS")
        identifier = Dataset()
        identifier.PatientName, identifier.AccessionNumber = "DOE*", ""
        step = Dataset()
        step.Modality = "CT"
        identifier.ScheduledProcedureStepSequence = [step]
        try:
            answers = [ds for _, ds in assoc.send_c_find(identifier,
                                                         ModalityWorklistInformationFind) if ds]
        finally:
            assoc.release()
        assert sorted(ds.AccessionNumber for ds in answers) == ["ACC1", "ACC3"]
    assert "worklist file broken.json skipped" in running.server.output


def worklist_accessions(port: int, patient: str) -> list[str]:
    """What a worklist C-FIND for `patient` finds (pynetdicom as the modality)."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    identifier = Dataset()
    identifier.PatientName, identifier.AccessionNumber = patient, ""
    identifier.ScheduledProcedureStepSequence = [Dataset()]
    try:
        return sorted(ds.AccessionNumber for _, ds in assoc.send_c_find(
            identifier, ModalityWorklistInformationFind) if ds)
    finally:
        assoc.release()


def test_worklist_items_added_and_removed_over_http_are_found_at_once(tmp_path: Path) -> None:
    """A RIS bridge adds items with POST /worklist or PUT /worklist/{id} (DICOM JSON),
    replaces and removes them; a worklist C-FIND sees each change at once. Bad items, ids and
    bodies are 400 and change nothing; an unknown item is 404."""
    folder = tmp_path / "worklist"
    with gateway(tmp_path / "data", "--worklist", str(folder)) as running:
        worklist = f"{running.server.base}/worklist"
        posted = requests.post(worklist, data=worklist_item("Doe^Jane", "ACC1", "CT",
                                                            "20261204"), timeout=30)
        assert posted.status_code == 200, posted.text
        new_id = posted.json()["id"]
        put = requests.put(f"{worklist}/ORDER-42", data=worklist_item(
            "Doe^John", "ACC2", "MR", "20261205"), timeout=30)
        assert put.status_code == 200 and put.json()["id"] == "ORDER-42"
        assert worklist_accessions(running.port, "doe*") == ["ACC1", "ACC2"]
        replaced = requests.put(f"{worklist}/ORDER-42", data=worklist_item(
            "Doe^John", "ACC3", "MR", "20261205"), timeout=30)
        assert replaced.status_code == 200
        listed = requests.get(worklist, timeout=30).json()["items"]
        assert sorted(entry["id"] for entry in listed) == sorted([new_id, "ORDER-42"])
        one = requests.get(f"{worklist}/ORDER-42", timeout=30).json()
        assert one["item"]["00080050"]["Value"] == ["ACC3"]
        for method, url, body in (
                ("POST", worklist, "{not json"),
                ("POST", worklist, "[]"),
                ("POST", worklist, '{"00100010": {"vr": "PN", "Value": [{"Alphabetic": '
                                   '"No^Steps"}]}}'),
                ("POST", worklist, '{"00100010": {"vr": "XX", "Value": [1]}}'),
                ("PUT", f"{worklist}/.hidden", worklist_item("A^B", "ACC9", "CT", "20261204")),
                ("PUT", f"{worklist}/{'x' * 65}", worklist_item("A^B", "ACC9", "CT",
                                                                "20261204"))):
            bad = requests.request(method, url, data=body, timeout=30)
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert requests.get(f"{worklist}/NOPE", timeout=30).status_code == 404
        assert requests.delete(f"{worklist}/NOPE", timeout=30).status_code == 404
        assert requests.delete(f"{worklist}/{new_id}", timeout=30).status_code == 200
        assert worklist_accessions(running.port, "doe*") == ["ACC3"]
        assert sorted(path.name for path in folder.iterdir()) == ["ORDER-42.json"]
    with gateway(tmp_path / "data2") as running:  # no --worklist
        none = requests.get(f"{running.server.base}/worklist", timeout=30)
        assert none.status_code == 400 and "--worklist" in none.json()["error"]["message"]


def commitment_request(references: list[tuple[str, str]]) -> Dataset:
    """An N-ACTION's Action Information asking to commit (SOP Class, SOP Instance) pairs."""
    request = Dataset()
    request.TransactionUID = generate_uid()
    request.ReferencedSOPSequence = []
    for sop_class, sop in references:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop
        request.ReferencedSOPSequence.append(item)
    return request


def test_storage_commitment_is_reported_on_the_association_or_back_to_the_peer(
        tmp_path: Path) -> None:
    """A modality asks by N-ACTION whether the archive keeps what it sent (PS3.4 J.3). While
    it holds the association open, the N-EVENT-REPORT comes on it: the stored instances in
    the Referenced SOP Sequence, an unknown one (0112H) and one of another SOP class (0119H)
    in the Failed SOP Sequence. When it releases at once, the report comes on a new
    association to it as a known peer."""
    series = ct_datasets(2, 8, "COMMIT^ME")
    reports: list[tuple[int, Dataset]] = []
    received = threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        reports.append((event.event_type, event.event_information))
        received.set()
        return 0x0000, None
    listener = AE(ae_title="MODALITY")
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    port = free_port()
    server = listener.start_server(("127.0.0.1", port), block=False,
                                   evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    try:
        with gateway(tmp_path / "data", "--dimse-peer", f"MODALITY@127.0.0.1:{port}") as running:
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
            ae.add_requested_context(StorageCommitmentPushModel)
            assoc = ae.associate("127.0.0.1", running.port, ae_title="PACS",
                                 evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
            assert assoc.is_established
            try:
                assert [assoc.send_c_store(ds).Status for ds in series] == [0, 0]
                request = commitment_request(
                    [(ds.SOPClassUID, ds.SOPInstanceUID) for ds in series] +
                    [(CTImageStorage, generate_uid()),
                     (MRImageStorage, series[0].SOPInstanceUID)])
                status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel,
                                                "1.2.840.10008.1.20.1.1")
                assert status.Status == 0x0000
                assert received.wait(30)
                unnamed = Dataset()
                unnamed.PatientName = "NO^TRANSACTION"
                for action_type, bad in ((2, request), (1, unnamed)):  # 0123H, then 0115H
                    status, _ = assoc.send_n_action(bad, action_type,
                                                    StorageCommitmentPushModel,
                                                    "1.2.840.10008.1.20.1.1")
                    assert status.Status == (0x0123 if action_type == 2 else 0x0115)
            finally:
                assoc.release()
            [(event_type, event)] = reports
            assert event_type == 2 and event.TransactionUID == request.TransactionUID
            assert sorted(item.ReferencedSOPInstanceUID for item in event.ReferencedSOPSequence
                          ) == sorted(ds.SOPInstanceUID for ds in series)
            assert sorted(item.FailureReason for item in event.FailedSOPSequence) == [
                0x0112, 0x0119]
            received.clear()
            assoc = ae.associate("127.0.0.1", running.port, ae_title="PACS")
            again = commitment_request([(ds.SOPClassUID, ds.SOPInstanceUID) for ds in series])
            status, _ = assoc.send_n_action(again, 1, StorageCommitmentPushModel,
                                            "1.2.840.10008.1.20.1.1")
            assoc.release()  # at once: the report must come to MODALITY's own port
            assert status.Status == 0x0000
            assert received.wait(30)
            event_type, event = reports[-1]
            assert event_type == 1 and event.TransactionUID == again.TransactionUID
            assert len(event.ReferencedSOPSequence) == 2 and "FailedSOPSequence" not in event
    finally:
        server.shutdown()
    log = running.server.output
    assert "reported on the same association" in log
    assert f"reported on a new association to MODALITY@127.0.0.1:{port}" in log
    assert "DICOM association from @" not in log  # the test's probe of the port: no line


def test_a_move_whose_destination_goes_away_is_reported(tmp_path: Path) -> None:
    """The destination aborts its association after the first instance: the C-MOVE ends
    with a failure or warning naming what was not sent, the archive is unchanged, and the
    gateway serves on."""
    series = ct_datasets(4, 16, "GONE^AWAY")
    ae = AE(ae_title="FLAKY")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
    stored: list[str] = []

    def on_store(event: Any) -> int:
        stored.append(event.request.AffectedSOPInstanceUID)
        if len(stored) == 1:
            threading.Timer(0.05, event.assoc.abort).start()  # the destination goes away
        return 0x0000
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        with gateway(tmp_path / "data", "--dimse-peer", f"FLAKY@127.0.0.1:{port}",
                     "--dimse-peer", "MOVESCU@127.0.0.1:104") as running:
            stow(running, series)
            scu = AE(ae_title="MOVESCU")
            scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            assoc = scu.associate("127.0.0.1", running.port, ae_title="PACS")
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "SERIES"
            identifier.StudyInstanceUID = series[0].StudyInstanceUID
            identifier.SeriesInstanceUID = series[0].SeriesInstanceUID
            try:
                *_, (final, failed) = list(assoc.send_c_move(
                    identifier, "FLAKY", StudyRootQueryRetrieveInformationModelMove))
            finally:
                assoc.release()
            assert final.Status != 0x0000 and final.NumberOfCompletedSuboperations < 4
            assert final.NumberOfFailedSuboperations + final.NumberOfCompletedSuboperations \
                + final.get("NumberOfRemainingSuboperations", 0) >= 1
            assert sorted(running.instances()) == sorted(ds.SOPInstanceUID for ds in series)
            later = association(running.port, calling="MOVESCU")
            assert later.send_c_echo().Status == 0x0000  # (left open: stopping aborts it)
    finally:
        server.shutdown()


CT_STORE = "projects/clinic/locations/here/datasets/imaging/dicomStores/ct"


def test_known_peers_from_their_hosts_do_what_each_may_in_the_store_called(
        tmp_path: Path) -> None:
    """Once peers are configured only they associate, each from its own host; each AE title
    of the gateway reaches its own store; a peer limited to some actions is refused the
    others with 0124H; every rejection and refusal is a log line saying why, and every
    request and rejection an audit log line."""
    audit = tmp_path / "audit.jsonl"
    with gateway(tmp_path / "data", "--ae-title", "ARCHIVE", "--dimse-store", f"CT={CT_STORE}",
                 "--audit-log", str(audit),
                 "--dimse-peer", "MODALITY1@127.0.0.1:11113/store",
                 "--dimse-peer", "VIEWER@localhost:11114/find+get",
                 "--dimse-peer", "FARAWAY@192.0.2.1:104") as running:
        [ds] = ct_datasets(1, 8, "ROUTED^BY^TITLE")
        modality = association(running.port, calling="MODALITY1", called="CT")
        assert modality.is_established
        try:
            assert modality.send_c_echo().Status == 0x0000
            assert modality.send_c_store(ds).Status == 0x0000
            assert [status.Status for status, _ in modality.send_c_find(
                query(PATIENT="*"), StudyRootQueryRetrieveInformationModelFind)] == [0x0124]
        finally:
            modality.release()
        ct = f"{running.server.base}/v1/{CT_STORE}/dicomWeb/instances"
        assert [found["00080018"]["Value"][0] for found in requests.get(ct, timeout=30).json()
                ] == [ds.SOPInstanceUID]
        assert running.instances() == []  # ARCHIVE's store, the default one: not there
        viewer = association(running.port, calling="VIEWER", called="CT")
        assert viewer.is_established
        try:
            assert viewer.send_c_store(ds).Status == 0x0124
            status, _ = viewer.send_n_action(  # storage commitment goes with storing
                commitment_request([(ds.SOPClassUID, ds.SOPInstanceUID)]), 1,
                StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
            assert status.Status == 0x0124
            answers = [identifier.StudyInstanceUID for status, identifier in viewer.send_c_find(
                query(PATIENT="ROUTED*"), StudyRootQueryRetrieveInformationModelFind)
                if status.Status == 0xFF00]
            assert answers == [ds.StudyInstanceUID]
        finally:
            viewer.release()
        for calling, called in (("STRANGER", "CT"), ("MODALITY1", "PACS"), ("FARAWAY", "CT")):
            assert not association(running.port, calling=calling, called=called).is_established
    log = running.server.output
    assert "DICOM gateway ARCHIVE, CT at 127.0.0.1" in log
    assert "'STRANGER' is not a known peer" in log
    assert "'PACS' is not one of the gateway's (ARCHIVE, CT)" in log
    assert "FARAWAY calls from 127.0.0.1, not from its host 192.0.2.1" in log
    assert "DICOM find from MODALITY1@127.0.0.1 refused: that peer may only store" in log
    assert "DICOM store from VIEWER@127.0.0.1 refused" in log
    lines = [line for line in map(orjson.loads, audit.read_text().splitlines())
             if line["identity"] is not None]  # (QIDO over HTTP, unauthenticated, is there)
    said = [(line["identity"], line["method"], line["resource"], line["status"], line["outcome"])
            for line in lines]
    assert said == [
        ("ae:MODALITY1", "C-STORE", CT_STORE, 0x0000, "success"),
        ("ae:MODALITY1", "C-FIND", CT_STORE, 0x0124, "denied"),
        ("ae:VIEWER", "C-STORE", CT_STORE, 0x0124, "denied"),
        ("ae:VIEWER", "N-ACTION", CT_STORE, 0x0124, "denied"),
        ("ae:VIEWER", "C-FIND", CT_STORE, 0x0000, "success"),
        ("ae:STRANGER", "A-ASSOCIATE", "CT", 0x03, "denied"),
        ("ae:MODALITY1", "A-ASSOCIATE", "PACS", 0x07, "denied"),
        ("ae:FARAWAY", "A-ASSOCIATE", "CT", 0x03, "denied")]
    assert lines[0]["instance"] == ds.SOPInstanceUID and lines[0]["client"] == "127.0.0.1"
    assert lines[4]["matches"] == 1 and "not a known peer" in lines[5]["reason"]


def query(**keys: str) -> Dataset:
    """A Study Root STUDY level identifier asking for the study UID and matching `keys`
    (keyword=value, PATIENT meaning PatientName)."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    identifier.PatientName = keys.get("PATIENT", "")
    return identifier


def certificate(folder: Path, name: str, issuer: tuple[Any, Any] | None = None,
                ) -> tuple[Any, Any]:
    """A key and certificate for `name` (127.0.0.1 as its address), signed by `issuer`'s
    (key, certificate) or by itself, written as NAME.key and NAME.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(subject).public_key(
        key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(
        now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
    if issuer is None:
        builder = builder.issuer_name(subject).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.issuer_name(issuer[1].subject).add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(issuer[0] if issuer else key, hashes.SHA256())
    (folder / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def test_dicom_over_tls_with_client_certificates(tmp_path: Path) -> None:
    """--dimse-tls-cert/-key/-ca: dcmtk's echoscu and pynetdicom associate over TLS with a
    certificate the authority signed, store, and move to a peer reached over TLS too
    (--dimse-tls-peer) that asks for the gateway's certificate; plain TCP, and TLS without a
    client certificate, are turned away; a key that does not match is a one-line error."""
    authority = certificate(tmp_path, "ca")
    for name in ("pacs", "modality", "dest"):
        certificate(tmp_path, name, authority)
    tls = ("--dimse-tls-cert", str(tmp_path / "pacs.pem"), "--dimse-tls-key",
           str(tmp_path / "pacs.key"), "--dimse-tls-ca", str(tmp_path / "ca.pem"))
    destination = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                             cafile=str(tmp_path / "ca.pem"))
    destination.load_cert_chain(tmp_path / "dest.pem", tmp_path / "dest.key")
    destination.verify_mode = ssl.CERT_REQUIRED
    received: list[str] = []
    dest = AE(ae_title="DEST")
    dest.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    port = free_port()
    server = dest.start_server(("127.0.0.1", port), block=False, ssl_context=destination,
                               evt_handlers=[(evt.EVT_C_STORE, lambda event: received.append(
                                   event.request.AffectedSOPInstanceUID) or 0x0000)])
    peers = ("--dimse-peer", "MODALITY@127.0.0.1:104", "--dimse-peer", "ECHOSCU@127.0.0.1:104",
             "--dimse-peer", f"DEST@127.0.0.1:{port}", "--dimse-tls-peer", "DEST")
    with contextlib.ExitStack() as stack:
        stack.callback(server.shutdown)
        running = stack.enter_context(gateway(tmp_path / "data", *tls, *peers))
        echo = subprocess.run(
            [dcmtk("echoscu"), "-aec", "PACS", "+tls", str(tmp_path / "modality.key"),
             str(tmp_path / "modality.pem"), "+cf", str(tmp_path / "ca.pem"), "127.0.0.1",
             str(running.port)], capture_output=True, text=True, timeout=60, check=False)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                            cafile=str(tmp_path / "ca.pem"))
        client.load_cert_chain(tmp_path / "modality.pem", tmp_path / "modality.key")
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        [ds] = ct_datasets(1, 8, "OVER^TLS")
        assoc = ae.associate("127.0.0.1", running.port, ae_title="PACS",
                             tls_args=(client, "127.0.0.1"))
        assert assoc.is_established
        try:
            assert assoc.send_c_store(ds).Status == 0x0000
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = ds.StudyInstanceUID
            *_, (final, _) = assoc.send_c_move(identifier, "DEST",
                                                StudyRootQueryRetrieveInformationModelMove)
            assert final.Status == 0x0000
        finally:
            assoc.release()
        assert running.instances() == [ds.SOPInstanceUID] == received
        assert not association(running.port).is_established  # plain TCP
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                               cafile=str(tmp_path / "ca.pem"))
        assert not ae.associate("127.0.0.1", running.port, ae_title="PACS",
                                tls_args=(anonymous, "127.0.0.1")).is_established
    assert "over TLS, client certificates required" in running.server.output
    bad = subprocess.run(
        [sys.executable, "-m", "pacs", "serve", "--data", str(tmp_path / "data"),
         "--dimse-port", "11112", "--dimse-tls-cert", str(tmp_path / "pacs.pem"),
         "--dimse-tls-key", str(tmp_path / "modality.key"), "--print-config"],
        capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and bad.stderr.startswith("pacs: --dimse-tls-cert")
    assert bad.stderr.count("\n") == 1


def test_dicom_on_a_public_address_needs_known_peers(tmp_path: Path) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "pacs", "serve", "--data", str(tmp_path / "data"),
         "--host", "0.0.0.0", "--allow-unauthenticated", "--dimse-port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode != 0
    assert "--dimse-peer" in started.stderr and "refusing" in started.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "pacs", "serve", "--data", str(tmp_path / "data"),
         "--dimse-port", "11112", "--ae-title", "A" * 17, "--print-config"],
        capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "--ae-title" in bad.stderr and "AE title" in bad.stderr
