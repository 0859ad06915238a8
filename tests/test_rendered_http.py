"""Rendered and thumbnail resources over HTTP (PS3.18 8.3.5, Sup 203), through plain requests
and dicomweb-client, and pixel work kept off the event loop."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_bytes, ct_datasets, ct_series

OCTET = "application/octet-stream"


class Stored:
    """A stored instance: its dataset and URLs."""

    def __init__(self, root: str, data: bytes) -> None:
        self.ds = dcmread(BytesIO(data))
        self.series_url = (f"{root}/studies/{self.ds.StudyInstanceUID}"
                           f"/series/{self.ds.SeriesInstanceUID}")
        self.url = f"{self.series_url}/instances/{self.ds.SOPInstanceUID}"


def store(root: str, data: bytes) -> Stored:
    response = requests.post(f"{root}/studies", data=data,
                             headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200, response.text
    return Stored(root, data)


@pytest.fixture(scope="module")
def archive(shared_server: LiveServer) -> Iterator[dict[str, Stored]]:
    root = shared_server.dicomweb
    stored = {name: store(root, corpus_bytes(name))
              for name in ("CT_small.dcm", "rtdose.dcm", "examples_ybr_color.dcm",
                           "image_dfl.dcm", "rtplan.dcm")}
    series = [store(root, data) for data in ct_series(5, size=96, patient="RENDER^SERIES")]
    stored["series"] = series[2]
    yield stored


def picture(response: requests.Response, media_type: str) -> Image.Image:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == media_type
    return Image.open(BytesIO(response.content))


def expected_window(ds: object, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear VOI after the Modality LUT, computed here independently."""
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)  # type: ignore[attr-defined]
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(values <= low, 0, np.where(values > high, 255, scaled))


def test_window_parameter_gives_the_standard_greyscale(archive: dict[str, Stored]) -> None:
    ct = archive["CT_small.dcm"]
    got = picture(requests.get(f"{ct.url}/rendered?window=40,400",
                               headers={"Accept": "image/png"}), "image/png")
    assert got.size == (ct.ds.Columns, ct.ds.Rows)
    assert np.abs(np.asarray(got, float) - expected_window(ct.ds, 40, 400)).max() <= 1


def test_header_window_is_the_default(archive: dict[str, Stored]) -> None:
    item = archive["series"]
    got = picture(requests.get(f"{item.url}/rendered", headers={"Accept": "image/png"}),
                  "image/png")
    expected = expected_window(item.ds, float(item.ds.WindowCenter), float(item.ds.WindowWidth))
    assert np.abs(np.asarray(got, float) - expected).max() <= 1


def test_jpeg_is_the_default_and_quality_changes_it(archive: dict[str, Stored]) -> None:
    ct = archive["CT_small.dcm"]
    plain = picture(requests.get(f"{ct.url}/rendered"), "image/jpeg")
    assert plain.format == "JPEG"
    low = requests.get(f"{ct.url}/rendered?quality=10").content
    high = requests.get(f"{ct.url}/rendered?quality=95").content
    assert len(low) < len(high)


@pytest.mark.parametrize(("viewport", "size"), [("64,64", (64, 64)), ("200,100", (100, 100)),
                                                ("64,64,0,0,64,32", (64, 32))])
def test_viewport(archive: dict[str, Stored], viewport: str, size: tuple[int, int]) -> None:
    ct = archive["CT_small.dcm"]  # 128 x 128
    got = picture(requests.get(f"{ct.url}/rendered?viewport={viewport}",
                               headers={"Accept": "image/png"}), "image/png")
    assert got.size == size


def test_multi_frame_instance_as_animated_gif_and_first_frame(archive: dict[str, Stored]) -> None:
    dose = archive["rtdose.dcm"]
    frames = int(dose.ds.NumberOfFrames)
    gif = picture(requests.get(f"{dose.url}/rendered", headers={"Accept": "image/gif"}),
                  "image/gif")
    assert gif.n_frames == frames
    listed = picture(requests.get(f"{dose.url}/frames/3,1/rendered",
                                  headers={"Accept": "image/gif"}), "image/gif")
    assert listed.n_frames == 2
    first = requests.get(f"{dose.url}/rendered", headers={"Accept": "image/png"})
    frame_one = requests.get(f"{dose.url}/frames/1/rendered", headers={"Accept": "image/png"})
    assert first.content == frame_one.content


def test_animations_are_bounded(tmp_path: Path) -> None:
    """An animated GIF holds every frame while it is encoded, so its length has a limit."""
    with run_server(tmp_path / "data", max_animated_frames=4) as running:
        dose = store(f"http://127.0.0.1:{running.port}/dicomweb", corpus_bytes("rtdose.dcm"))
        gif = picture(requests.get(f"{dose.url}/rendered", headers={"Accept": "image/gif"}),
                      "image/gif")
        assert gif.n_frames == 4  # the instance's first frames
        response = requests.get(f"{dose.url}/frames/1,2,3,4,5/rendered",
                                headers={"Accept": "image/gif"})
        assert response.status_code == 400
        assert "at most 4" in response.json()["error"]["message"]


def test_rendered_pixels_are_bounded(tmp_path: Path) -> None:
    """`max_rendered_pixels` bounds each frame decoded for a picture, whatever the viewport,
    and the picture itself: a larger viewport or frame list is 400, an instance's animation
    is cut to the frames that fit."""
    with run_server(tmp_path / "data", max_rendered_pixels=1000) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        ct = store(root, corpus_bytes("CT_small.dcm"))  # 128 x 128
        dose = store(root, corpus_bytes("rtdose.dcm"))  # 15 frames of 10 x 10
        for url in (f"{ct.url}/rendered?viewport=16,16", f"{ct.url}/thumbnail",
                    f"{ct.series_url}/rendered"):
            refused(requests.get(url), "frames of 128x128 pixels are not rendered")
        refused(requests.get(f"{dose.url}/rendered?viewport=40,40"), "40x40",
                "at most 1000 pixels")
        assert picture(requests.get(f"{dose.url}/rendered?viewport=30,30"),
                       "image/jpeg").size == (30, 30)
        gif = picture(requests.get(f"{dose.url}/rendered", headers={"Accept": "image/gif"}),
                      "image/gif")
        assert gif.n_frames == 10  # the instance's first frames, as many as fit
        frames = ",".join(str(n) for n in range(1, 12))
        refused(requests.get(f"{dose.url}/frames/{frames}/rendered",
                             headers={"Accept": "image/gif"}), "11 frame(s) of 10x10")


def _kib(field: str) -> int:
    """A size from this process's /proc status (VmRSS, VmHWM), in KiB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(f"{field}:"))
    return int(line.split()[1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_pixel_jobs_share_a_memory_budget(tmp_path: Path) -> None:
    """`max_pixel_memory_bytes`: renders that do not fit in it together wait for each other,
    so eight 6000 x 6000 viewports at once peak at about one's working memory (about three
    bytes per output pixel), not eight's. Peak RSS of this process, the server's, is reset
    through /proc/self/clear_refs just before."""
    side = 6000
    with run_server(tmp_path / "data", pixel_workers=8,
                    max_pixel_memory_bytes=64 * 1024**2) as running:
        ct = store(f"http://127.0.0.1:{running.port}/dicomweb", ct_series(1, size=512)[0])

        def render(quality: int) -> None:  # a quality of its own: never a cached picture
            response = requests.get(f"{ct.url}/rendered",
                                    params={"viewport": f"{side},{side}", "quality": quality})
            assert response.status_code == 200, response.text[:300]

        render(50)
        before = _kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(render, range(60, 68)))
        growth = (_kib("VmHWM") - before) * 1024
    assert growth < 2 * 3 * side * side  # less than two renders' worth


def refused(response: requests.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    for fragment in fragments:
        assert fragment in error["message"]


def test_transcoded_instances_are_bounded(tmp_path: Path) -> None:
    """A whole instance is transcoded in memory, so its size is limited; as stored it is not."""
    data = corpus_bytes("CT_small.dcm")
    with run_server(tmp_path / "data", max_transcode_bytes=len(data) - 1) as running:
        ct = store(f"http://127.0.0.1:{running.port}/dicomweb", data)
        refused = requests.get(ct.url, headers={
            "Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"})
        assert refused.status_code == 406
        assert f"at most {len(data) - 1}" in refused.json()["error"]["message"]
        frame = requests.get(f"{ct.url}/frames/1", headers={
            "Accept": "multipart/related; type=image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"})
        assert frame.status_code == 200  # frames are transcoded one by one
        as_stored = requests.get(ct.url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert as_stored.content == data


def test_frames_rendered_multipart_one_part_per_frame(archive: dict[str, Stored]) -> None:
    ybr = archive["examples_ybr_color.dcm"]
    response = requests.get(f"{ybr.url}/frames/2,5,9/rendered",
                            headers={"Accept": "multipart/related; type=image/jpeg"})
    assert response.status_code == 200, response.text
    client_parts = DICOMwebClient(ybr.url.split("/studies/")[0]).retrieve_instance_frames_rendered(
        ybr.ds.StudyInstanceUID, ybr.ds.SeriesInstanceUID, ybr.ds.SOPInstanceUID, [2, 5, 9],
        media_types=("image/jpeg",))
    assert Image.open(BytesIO(client_parts)).mode == "RGB"
    assert response.content.count(b"Content-Type: image/jpeg") == 3


@pytest.mark.parametrize("level", ["study", "series", "instance", "frame"])
def test_thumbnails_at_every_level(archive: dict[str, Stored], level: str) -> None:
    item = archive["series"]
    url = {"study": item.series_url.split("/series/")[0], "series": item.series_url,
           "instance": item.url, "frame": f"{item.url}/frames/1"}[level]
    got = picture(requests.get(f"{url}/thumbnail"), "image/jpeg")
    assert max(got.size) <= 128
    png = picture(requests.get(f"{url}/thumbnail?accept=image%2Fpng",
                               headers={"Accept": "*/*"}), "image/png")
    assert png.size == got.size


def test_series_single_part_is_the_middle_image(archive: dict[str, Stored]) -> None:
    item = archive["series"]  # the third of five slices
    series = requests.get(f"{item.series_url}/rendered", headers={"Accept": "image/png"})
    instance = requests.get(f"{item.url}/rendered", headers={"Accept": "image/png"})
    assert series.content == instance.content


def test_study_multipart_renders_every_image(archive: dict[str, Stored]) -> None:
    item = archive["series"]
    study = item.series_url.split("/series/")[0]
    response = requests.get(f"{study}/rendered",
                            headers={"Accept": "multipart/related; type=image/png"})
    assert response.status_code == 200, response.text
    assert response.content.count(b"Content-Type: image/png") == 5


def test_dicomweb_client_rendered_calls(shared_server: LiveServer,
                                        archive: dict[str, Stored]) -> None:
    client = DICOMwebClient(shared_server.dicomweb)
    ct = archive["CT_small.dcm"].ds
    png = client.retrieve_instance_rendered(ct.StudyInstanceUID, ct.SeriesInstanceUID,
                                            ct.SOPInstanceUID, media_types=("image/png",),
                                            params={"window": "40,400"})
    expected = expected_window(ct, 40, 400)
    assert np.abs(np.asarray(Image.open(BytesIO(png)), float) - expected).max() <= 1
    series = archive["series"].ds
    jpeg = client.retrieve_series_rendered(series.StudyInstanceUID, series.SeriesInstanceUID,
                                           media_types=("image/jpeg",),
                                           params={"viewport": "48,48"})
    assert Image.open(BytesIO(jpeg)).size == (48, 48)


@pytest.mark.parametrize(("query", "accept", "status", "fragment"), [
    ("annotation=patient", "image/jpeg", 400, "annotation"),
    ("quality=0", "image/jpeg", 400, "quality"),
    ("window=40", "image/jpeg", 400, "window"),
    ("viewport=10", "image/jpeg", 400, "viewport"),
    ("viewport=10000,10000", "image/jpeg", 400, "at most 67108864 pixels"),
    ("", "image/webp", 406, "image/jpeg"),
])
def test_bad_rendered_requests(archive: dict[str, Stored], query: str, accept: str,
                               status: int, fragment: str) -> None:
    response = requests.get(f"{archive['CT_small.dcm'].url}/rendered?{query}",
                            headers={"Accept": accept})
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_nothing_to_render(archive: dict[str, Stored]) -> None:
    plan = archive["rtplan.dcm"]
    for url in (f"{plan.url}/rendered", f"{plan.series_url}/thumbnail",
                f"{archive['CT_small.dcm'].url}/frames/2/rendered"):
        response = requests.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_deflated_instance_frames_and_rendered(archive: dict[str, Stored]) -> None:
    """A deflated dataset has no recorded frame spans: its frames come from parsing it."""
    item = archive["image_dfl.dcm"]
    response = requests.get(f"{item.url}/frames/1",
                            headers={"Accept": f"multipart/related; type={OCTET}"})
    assert response.status_code == 200, response.text
    assert item.ds.pixel_array.tobytes() in response.content
    picture(requests.get(f"{item.url}/rendered"), "image/jpeg")


def test_slow_pixel_work_does_not_stall_searches(live_server: LiveServer) -> None:
    """Transcodes queue in the pixel workers; a search issued while they run is answered
    before they are all done (ordering, not timing, is asserted)."""
    root = live_server.dicomweb
    frames = 32
    [ds] = ct_datasets(1, 512, "SLOW^PIXELS", NumberOfFrames=frames)
    ds.PixelData = np.random.default_rng(1).integers(-1024, 3000, (frames, 512, 512),
                                                      dtype=np.int16).tobytes()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    item = store(root, out.getvalue())
    finished: list[str] = []

    def transcode(number: int) -> None:
        response = requests.get(f"{item.url}/frames/{number}", headers={
            "Accept": 'multipart/related; type="image/jxl"; '
                      "transfer-syntax=1.2.840.10008.1.2.4.110"})
        assert response.status_code == 200
        finished.append("transcode")

    workers = [threading.Thread(target=transcode, args=(n,)) for n in range(1, frames + 1)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)  # let the transcodes queue up
    search = requests.get(f"{root}/studies", params={"PatientName": "SLOW^PIXELS"})
    finished.append("search")
    for worker in workers:
        worker.join()
    assert search.status_code == 200
    assert finished.index("search") < len(finished) - 1, finished
