"""An instance read to be sent (C-GET, C-MOVE) with its pixel data as a buffer over the
blob: written out, it is the stored data set byte for byte, native or encapsulated, with the
elements after its pixel data (trailing padding) too."""

from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from pacs.dicom.ingest import data_set_start
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.pixels.source import read_instance_buffered
from pacs.service.archive import Archive, open_archive
from pacs.service.retrieve import locate
from pacs.service.store_instances import store_file
from pacs.service.targets import Target
from pacs.settings import Settings
from tests.dataset_factories import corpus_path

CORPUS = ["CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm",
          "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "rtdose.dcm"]


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[Archive]:
    configure_pydicom()
    opened = await open_archive(Settings(data_dir=tmp_path / "data"))
    try:
        yield opened
    finally:
        await opened.close()


async def stored_and_sent(archive: Archive, path: Path) -> tuple[bytes, bytes, bool]:
    """The stored data set's bytes, those of the instance read to be sent, written in its
    own encoding as pynetdicom writes it, and whether its pixel data was a buffer."""
    store = await archive.stores.get(archive.settings.default_store)
    outcome = await store_file(archive, store, path)
    assert outcome.stored, outcome.detail
    [item] = await locate(archive, store, Target.of(outcome.study_uid, outcome.series_uid,
                                                    outcome.sop_uid))
    blob = archive.blobs.read(item.blob_name, 0, item.blob_size)
    ds = read_instance_buffered(archive.blobs, item)
    syntax = ds.file_meta.TransferSyntaxUID
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
    buffered = any(element.is_buffered for element in ds)
    write_dataset(out, ds)
    return blob[data_set_start(BytesIO(blob)):], out.getvalue(), buffered


@pytest.mark.parametrize("name", CORPUS)
async def test_an_instance_sent_is_the_stored_data_set(archive: Archive, name: str) -> None:
    stored, sent, buffered = await stored_and_sent(archive, corpus_path(name))
    assert sent == stored and buffered


async def test_much_after_the_pixel_data_is_read_whole(archive: Archive,
                                                        tmp_path: Path) -> None:
    ds = pydicom.dcmread(corpus_path("rtdose.dcm"))
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * (2 * 1024 * 1024))  # trailing padding, 2 MiB
    path = tmp_path / "padded.dcm"
    ds.save_as(path, enforce_file_format=True)
    stored, sent, buffered = await stored_and_sent(archive, path)
    assert sent == stored and sent.endswith(b"\0" * 16) and not buffered
