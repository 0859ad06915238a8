"""A series asked for in another syntax: instances are transcoded ahead of the one being sent
(pacs.pixels.engine.Lookahead); order, content and an abandoned download."""

from io import BytesIO

import numpy as np
import pydicom
import requests

from tests.conftest import LiveServer
from tests.dataset_factories import ct_series
from tests.multipart_parts import parse_multipart

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


def test_series_transcoded_in_order_and_abandoned_downloads(live_server: LiveServer) -> None:
    root = live_server.dicomweb
    files = ct_series(12, size=64, patient="AHEAD^SERIES")
    for data in files:
        stored = requests.post(f"{root}/studies", data=data,
                               headers={"Content-Type": "application/dicom"})
        assert stored.status_code == 200
    first = pydicom.dcmread(BytesIO(files[0]))
    url = f"{root}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={J2K_LOSSLESS}'
    for _ in range(3):  # start downloads and walk away after the first bytes
        with requests.get(url, headers={"Accept": accept}, stream=True) as abandoned:
            assert abandoned.status_code == 200
            next(abandoned.iter_content(1024))
    response = requests.get(url, headers={"Accept": accept})
    assert response.status_code == 200
    sent = [pydicom.dcmread(BytesIO(body)) for _, body in parse_multipart(response)]
    sources = [pydicom.dcmread(BytesIO(data)) for data in files]
    assert [d.InstanceNumber for d in sent] == list(range(1, 13))
    for got, source in zip(sent, sources, strict=True):
        assert got.file_meta.TransferSyntaxUID == J2K_LOSSLESS
        assert got.SOPInstanceUID == source.SOPInstanceUID
        assert np.array_equal(got.pixel_array, source.pixel_array)
