"""The README's commands and examples, run as written against a live server."""

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pydicom
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from pacs.config import BY_NAME
from tests.conftest import LiveServer
from tests.dataset_factories import corpus_path

README = Path(__file__).parent.parent / "README.md"


def _curl_commands() -> list[str]:
    block = README.read_text().split("## With curl", 1)[1].split("```sh", 1)[1].split("```")[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl")]


def test_readme_curl_commands_work(live_server: LiveServer, tmp_path: Path) -> None:
    source = corpus_path("CT_small.dcm")
    ds = pydicom.dcmread(source)
    ds.PatientName = "Doe^Jane"  # so the README's search finds it
    ds.save_as(tmp_path / "image.dcm")
    uids = {"STUDY": ds.StudyInstanceUID, "SERIES": ds.SeriesInstanceUID,
            "INSTANCE": ds.SOPInstanceUID}
    commands = _curl_commands()
    assert len(commands) == 5
    outputs = []
    for command in commands:
        command = command.replace("http://127.0.0.1:8080", live_server.base)
        for placeholder, uid in uids.items():
            command = re.sub(rf"\b{placeholder}\b", uid, command)
        result = subprocess.run([*shlex.split(command), "-sS", "--fail-with-body"],
                                cwd=tmp_path, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        outputs.append(result.stdout)
    assert b"ReferencedSOPSequence" in outputs[0]
    assert ds.StudyInstanceUID.encode() in outputs[1]
    assert (tmp_path / "copy.dcm").read_bytes() == (tmp_path / "image.dcm").read_bytes()
    j2k = pydicom.dcmread(tmp_path / "j2k.dcm")
    assert j2k.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert (j2k.pixel_array == ds.pixel_array).all()
    with Image.open(tmp_path / "picture.png") as picture:
        assert picture.format == "PNG"
        assert picture.size == (256, 256)


def _block(language: str, after: str) -> str:
    """The README's first ```language block after the text `after`."""
    return README.read_text().split(after, 1)[1].split(f"```{language}\n", 1)[1].split("```")[0]


def test_readme_dicomweb_client_example_works(live_server: LiveServer) -> None:
    ds = pydicom.dcmread(corpus_path("CT_small.dcm"))
    ds.PatientName = "Doe^Jane"
    example = _block("python", "**With dicomweb-client**")
    DICOMwebClient(live_server.dicomweb).store_instances([ds])
    scope: dict[str, object] = {}
    exec(example.replace("http://127.0.0.1:8080", live_server.base), scope)  # noqa: S102
    instances = scope["instances"]
    assert isinstance(instances, list)
    assert [instance.SOPInstanceUID for instance in instances] == [ds.SOPInstanceUID]


def test_readme_configuration_example_is_a_valid_configuration() -> None:
    table = tomllib.loads(_block("toml", "## Configuration"))
    assert len(table) >= 8
    for key, value in table.items():
        option = BY_NAME[key]  # a KeyError names a key the server would refuse
        option.read(option.kind.toml, value, "README: ")
