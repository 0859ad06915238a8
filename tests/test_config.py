"""`pacs serve`'s one configuration: flags over PACS_* variables over the TOML file over the
defaults, one line for each mistake, and the effective configuration printed with secrets
hidden (pacs/config.py)."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from pacs.config import OPTIONS
from pacs.cores import usable_cores
from pacs.settings import HELP, Settings
from tests.served_process import free_port, served

TOKEN = "t0p-s3cr3t-t0ken"


def _pacs(*args: str, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacs", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def _effective(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = _pacs("serve", "--print-config", *args, env=env)
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)  # what it prints is itself a configuration file


def test_flags_win_over_variables_over_the_file_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text('port = 9001\nworkers = 3\nlog_level = "warning"\n'
                      'max_query_bytes = 1000\n')
    assert _effective()["port"] == 8080
    assert _effective("--config", str(config))["port"] == 9001
    from_env = _effective(env={"PACS_CONFIG": str(config), "PACS_PORT": "9002"})
    assert (from_env["port"], from_env["workers"], from_env["log_level"],
            from_env["max_query_bytes"]) == (9002, 3, "warning", 1000)
    from_flag = _effective("--config", str(config), "--port", "9003", "--no-allow-"
                           "unauthenticated", env={"PACS_PORT": "9002",
                                                   "PACS_ALLOW_UNAUTHENTICATED": "yes"})
    assert (from_flag["port"], from_flag["workers"]) == (9003, 3)
    assert from_flag["allow_unauthenticated"] is False


def test_the_printed_configuration_names_each_source_and_hides_secrets(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(f'auth_tokens = {{ "{TOKEN}" = "user:alice@example.com" }}\n'
                      'public_url = "https://proxy:hunter2@pacs.example/"\n')
    printed = _pacs("serve", "--print-config", "--config", str(config), "--port", "9000",
                    env={"PACS_WORKERS": "2"}).stdout
    assert TOKEN not in printed and "hunter2" not in printed
    assert "port = 9000  # flag" in printed
    assert "workers = 2  # environment" in printed
    assert 'public_url = "https://proxy:***@pacs.example/"  # file' in printed
    assert 'host = "127.0.0.1"  # default' in printed


@pytest.mark.parametrize(("content", "env", "message"), [
    ("prot = 8080\n", {}, "unknown option 'prot' (did you mean 'port'?)"),
    ('port = "8080"\n', {}, "port must be an integer, not '8080'"),
    ("port = \n", {}, "is not valid TOML"),
    ("", {"PACS_WORKERS": "many"}, "PACS_WORKERS: workers must be an integer, not 'many'"),
    ("", {"PACS_ALLOW_UNAUTHENTICATED": "maybe"}, "must be true or false, not 'maybe'"),
    ('log_format = "xml"\n', {}, "log_format must be one of text, json, not 'xml'"),
    ('store = ["bad"]\n', {}, "store in "),
    ('auth_tokens = { t = "alice" }\n', {}, "must be a JSON object of tokens to identities"),
    ('index = "mysql://u:hunter2@db/pacs"\n', {}, "no index is kept at mysql://…: give "
                                                  "postgresql://…"),
    ("", {"PACS_BLOBS": "gs://bucket/x"}, "PACS_BLOBS: no blob store is kept at gs://…"),
    ('dimse_peer = ["CT@10.0.0.5:104/store+delete"]\n', {},
     "delete is not one of store, find, get, move"),
    ('dimse_peer = ["CT@10.0.0.5"]\n', {}, "is not a DICOM peer: give TITLE@HOST:PORT"),
    ('dimse_store = ["CT"]\n', {}, "give TITLE=projects/P/locations/L/datasets/D/dicomStores/S"),
    ('dimse_peer = ["CT@10.0.0.5:104"]\ndimse_tls_peer = ["MR"]\n', {},
     "MR is not the AE title of a --dimse-peer"),
    ('dimse_tls_cert = "/nowhere/cert.pem"\n', {}, "TLS needs both the certificate and its"),
    ('dimse_store = ["CT=stores/ct"]\n', {}, "dimse_store in "),
    ('ae_title = "CT"\ndimse_store = ["CT=projects/p/locations/l/datasets/d/dicomStores/s"]\n',
     {}, "AE title CT is given twice (also by ae_title in "),
])
def test_each_mistake_is_one_line(tmp_path: Path, content: str, env: dict[str, str],
                                  message: str) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(content)
    done = _pacs("serve", "--config", str(config), "--data", str(tmp_path / "d"), env=env)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pacs: ")
    assert "hunter2" not in done.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was opened


def test_a_missing_configuration_file_is_one_line(tmp_path: Path) -> None:
    done = _pacs("serve", env={"PACS_CONFIG": str(tmp_path / "nowhere.toml")})
    assert done.returncode == 1
    assert done.stderr == f"pacs: cannot read the configuration file {tmp_path}/nowhere.toml:" \
                          " No such file or directory\n"


def test_every_limit_is_an_option_with_its_variable_in_the_help() -> None:
    help_text = " ".join(_pacs("serve", "--help", env={"COLUMNS": "200"}).stdout.split())
    tunable = [f.name for f in Settings.__dataclass_fields__.values() if HELP in f.metadata]
    assert len(tunable) > 20
    assert {o.name for o in OPTIONS} >= set(tunable)
    for option in OPTIONS:
        assert option.flag in help_text and f"${option.variable}" in help_text


def test_a_server_configured_by_file_and_variables_alone(tmp_path: Path) -> None:
    """No flags at all, as a container runs it: the file sets the port and a limit, the
    environment the data directory, and the JSON log says where each came from."""
    port = free_port()
    config = tmp_path / "pacs.toml"
    config.write_text(f'port = {port}\nworkers = 1\nmax_query_bytes = 200\n'
                      f'auth_tokens = {{ "{TOKEN}" = "user:admin@example.com" }}\n'
                      'admin = ["user:admin@example.com"]\nlog_format = "json"\n')
    env = {"PACS_CONFIG": str(config), "PACS_DATA": str(tmp_path / "data")}
    with served(port=port, env=env) as server:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{server.base}/dicomweb/studies", headers=auth).status_code == 204
        assert requests.get(f"{server.base}/dicomweb/studies").status_code == 401
        long = requests.get(f"{server.base}/dicomweb/studies?PatientID={'x' * 300}",
                            headers=auth)
        assert long.status_code == 414
    assert (tmp_path / "data" / "index.sqlite3").exists()
    assert TOKEN not in server.output
    records = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    [effective] = [r["config"] for r in records if r["message"] == "effective configuration"]
    assert effective["port"] == {"value": port, "source": "file"}
    assert effective["data"] == {"value": str(tmp_path / "data"), "source": "environment"}
    assert effective["max_query_bytes"] == {"value": 200, "source": "file"}
    assert effective["auth_tokens"]["value"] == "(1 tokens, hidden)"


@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbled", None)])
def test_workers_default_to_the_cores_a_container_may_use(tmp_path: Path, cpu_max: str,
                                                          limit: int | None) -> None:
    """A container limited to 1.5 CPUs (cgroup v2 cpu.max) starts 2 workers, not one per
    core of the host."""
    file = tmp_path / "cpu.max"
    file.write_text(cpu_max)
    cpus = len(os.sched_getaffinity(0))
    assert usable_cores(file) == (cpus if limit is None else min(cpus, limit))
    assert usable_cores(tmp_path / "none") == cpus
