"""OHIF beside the archive (`pacs serve --viewer DIR`, pacs/http/viewer.py): the build served
at /viewer/ with its root URLs rebased and an app-config for this server, and OHIF v3 itself
in headless Chromium listing, filtering and rendering what a client stored."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import ct_series
from tests.served_process import served

ROOT = Path(__file__).parent.parent
CACHE = ROOT / ".cache" / "viewer"  # where tests/viewer/install.sh puts OHIF and playwright
ARTIFACTS = ROOT / "artifacts" / "viewer"  # screenshots (ignored by git)
INDEX = ('<html><head><script>window.PUBLIC_URL="/"</script>'
         '<link rel="manifest" href="/manifest.json"><script src="/app-config.js"></script>'
         '<script src="/app.bundle.1234.js"></script><a href="//cdn.example/x">x</a>'
         '</head></html>')
BUNDLE = 'var a = 1;\n// webpack/runtime/public_path\n__webpack_require__.p = "/";\n'


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A viewer build shaped as OHIF's dist: files named from the root "/"."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "app.bundle.1234.js").write_text(BUNDLE)
    (dist / "5678.bundle.js").write_text("plain()")
    (dist / "app.css").write_text("@font-face{src:url(/a1.woff2)} b{x:url(//cdn/y)}")
    (dist / "manifest.json").write_text('{"icons": [{"src": "/assets/i.png"}]}')
    (dist / "assets" / "i.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("outside the build")
    return dist


def test_the_build_is_served_below_viewer_with_its_urls_rebased(tmp_path: Path,
                                                                 build: Path) -> None:
    with run_server(tmp_path / "data", viewer_dir=build) as running:
        base = f"http://127.0.0.1:{running.port}"
        page = requests.get(f"{base}/viewer/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'window.PUBLIC_URL="/viewer/"' in page.text
        assert 'href="/viewer/manifest.json"' in page.text
        assert 'src="/viewer/app.bundle.1234.js"' in page.text
        assert 'href="//cdn.example/x"' in page.text  # another host's URL is left alone
        assert requests.get(f"{base}/viewer").text == page.text
        # OHIF's own routes are the page too, whatever their query
        route = requests.get(f"{base}/viewer/viewer?StudyInstanceUIDs=1.2.3")
        assert route.status_code == 200 and route.text == page.text
        bundle = requests.get(f"{base}/viewer/app.bundle.1234.js")
        assert '__webpack_require__.p = "/viewer/";' in bundle.text
        assert "immutable" in bundle.headers["cache-control"]
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert requests.get(f"{base}/viewer/5678.bundle.js").text == "plain()"
        assert requests.get(f"{base}/viewer/app.css").text == \
            "@font-face{src:url(/viewer/a1.woff2)} b{x:url(//cdn/y)}"
        assert requests.get(f"{base}/viewer/manifest.json").json() == \
            {"icons": [{"src": "/viewer/assets/i.png"}]}
        assert requests.get(f"{base}/viewer/assets/i.png").content == b"\x89PNG"
        for escape in ("/viewer/../secret.txt", "/viewer/%2e%2e/secret.txt",
                       "/viewer/..%2fsecret.txt", "/viewer/%00", "/viewer/" + "a" * 5000):
            answer = requests.get(base + escape)
            assert answer.status_code in (200, 404) and "outside the build" not in answer.text


def test_the_app_config_points_the_viewer_at_this_server(tmp_path: Path, build: Path) -> None:
    with run_server(tmp_path / "data", viewer_dir=build) as running:
        config = requests.get(f"http://127.0.0.1:{running.port}/viewer/app-config.js")
        assert config.status_code == 200 and config.headers["cache-control"] == "no-cache"
        assert "const ROOT = window.location.origin + '/dicomweb';" in config.text
        assert '"routerBasename": "/viewer"' in config.text
    with run_server(tmp_path / "data", viewer_dir=build,
                    public_url="https://pacs.example/") as running:
        config = requests.get(f"http://127.0.0.1:{running.port}/viewer/app-config.js")
        assert 'const ROOT = "https://pacs.example/dicomweb";' in config.text


def test_without_a_viewer_the_path_is_a_clear_404(live_server: LiveServer) -> None:
    answer = requests.get(f"{live_server.base}/viewer/")
    assert answer.status_code == 404
    assert "--viewer" in answer.json()["error"]["message"]


def test_a_viewer_folder_without_a_build_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pacs", "serve", "--viewer", str(tmp_path),
                           "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == (f"pacs: --viewer {tmp_path} has no index.html: give the dist "
                           "folder of an OHIF v3 build (npm pack @ohif/app)\n")


def _browser() -> dict[str, str]:
    """Where OHIF, playwright-core, node and chromium are; skips (or fails, in CI: when
    PACS_REQUIRE_VIEWER is set) if any is missing."""
    parts = {"ohif": CACHE / "ohif" / "index.html",
             "playwright": CACHE / "node_modules" / "playwright-core",
             "node": Path(shutil.which("node") or "/missing/node"),
             "chromium": Path(shutil.which("chromium") or "/missing/chromium")}
    missing = [name for name, path in parts.items() if not path.exists()]
    if missing:
        reason = f"no {', '.join(missing)}: run tests/viewer/install.sh (and apt chromium)"
        if os.environ.get("PACS_REQUIRE_VIEWER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {name: str(path) for name, path in parts.items()}


def _without_modality() -> pydicom.Dataset:
    """An instance with no Modality, as some secondary captures and converted files come:
    its study's ModalitiesInStudy has no value."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    del ds.Modality
    ds.PatientName = "Nomodality^Case"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def test_ohif_lists_filters_and_renders_what_a_client_stored(tmp_path: Path) -> None:
    """The issue's check, in a real browser through `pacs serve --viewer`: the study list
    shows each study with its description, modality and instance count; a patient name typed
    in lower case filters it; a study opened from the list renders non-black pixels."""
    parts = _browser()
    with served("--viewer", str(Path(parts["ohif"]).parent), "--workers", "1",
                "--data", str(tmp_path / "data")) as server:
        client = DICOMwebClient(f"{server.base}/dicomweb")
        client.store_instances([pydicom.dcmread(io.BytesIO(data)) for data in ct_series(
            12, 128, patient="Nakamura^Aiko", StudyDescription="Chest CT generated")])
        client.store_instances([pydicom.dcmread(get_testdata_file(name, download=False))
                                for name in ("CT_small.dcm", "MR_small.dcm")])
        client.store_instances([_without_modality()])
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        drive = subprocess.run(
            [parts["node"], str(ROOT / "tests" / "viewer" / "drive.js"), "--base", server.base,
             "--playwright", parts["playwright"], "--chromium", parts["chromium"],
             "--out", str(ARTIFACTS), "--studies", "4", "--filter", "nakam",
             "--open", "Nakamura"],
            capture_output=True, text=True, timeout=300, check=False)
    assert drive.returncode == 0, drive.stderr
    result = json.loads(drive.stdout.splitlines()[-1])
    assert "error" not in result, result
    studies = [row for row in result["studyList"] if "Reset" != row]
    assert len(studies) == 4, studies  # the one without a modality included
    [generated] = [row for row in studies if row.startswith("Nakamura, Aiko")]
    assert "Chest CT generated" in generated and " CT " in generated
    assert generated.endswith(" 12")  # its instance count
    assert any(row.startswith("CompressedSamples, MR1") and " MR " in row for row in studies)
    assert [row for row in result["filtered"] if row != "Reset"] == [generated]
    assert result["opened"] and result["rendered"], result["steps"]
    assert "/viewer/viewer?StudyInstanceUIDs=" in result["viewerUrl"]
    assert not [line for line in result["console"] if "Failed to load resource" in line]
    assert " 500 " not in server.output and '" 404 ' not in server.output
    assert (ARTIFACTS / "viewport.png").stat().st_size > 0
