"""Memory of our DICOM gateway while C-GET sends one large instance.

    python -m benchmarks.dimse_get_memory [--mb 256] [--out results.json]

Builds a multi-frame CT of about `--mb` MB in memory (1024x1024 int16 frames), stores it by
STOW-RS into a fresh `pacs serve --dimse-port --workers 1 --dimse-processes 1`, then
retrieves its study by C-GET with pynetdicom as the SCU while the server's process tree is
sampled every 50 ms (benchmarks/resources.py). Prints the tree's RSS when idle and its peak
during the C-GET, the difference against the instance's size, and the time; then the JSON
document, written with `--out`. Exits 1 when the instance did not come back whole.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from benchmarks.dataset import CTFactory, new_run_id
from benchmarks.resources import Usage
from benchmarks.servers import free_port, listening, pacs_server

FRAME = 1024  # rows and columns of each frame
IDLE_S = 1.0  # the server sampled at rest this long before the C-GET


def big_instance(megabytes: int) -> tuple[bytes, str]:
    """A Part 10 multi-frame CT of about `megabytes` MB, and its Study Instance UID."""
    series = CTFactory(16, 16).series(1, f"BIG^{new_run_id()}", new_run_id())
    ds = pydicom.dcmread(BytesIO(series.instances[0].data))
    frames = max(1, megabytes * 10**6 // (FRAME * FRAME * 2))
    ds.Rows = ds.Columns = FRAME
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros(frames * FRAME * FRAME, dtype=np.int16).tobytes()
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), str(ds.StudyInstanceUID)


def c_get(port: int, study: str) -> int:
    """Bytes of the data sets the study's C-GET brought back."""
    received: list[int] = []

    def on_store(event: Any) -> int:  # pynetdicom's Event: its request is a C-STORE
        received.append(len(event.request.DataSet.getvalue()))
        return 0x0000
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS",
                         ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not assoc.is_established:
        raise SystemExit("the gateway did not accept the association")
    identifier = Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study
    try:
        for _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet):
            pass
    finally:
        assoc.release()
    return sum(received)


def measure(megabytes: int, work: Path) -> dict[str, Any]:
    data, study = big_instance(megabytes)
    port = free_port()
    extra = ("--dimse-port", str(port), "--dimse-processes", "1")
    with pacs_server(work / "data", work / "server.log", 1, extra) as server:
        deadline = time.monotonic() + 60
        while not listening(port):
            if time.monotonic() > deadline:
                raise SystemExit("the DICOM port never opened")
            time.sleep(0.1)
        request = urllib.request.Request(f"{server.url}/studies", data=data, method="POST",
                                         headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            answer.read()
        idle = Usage(server.pid)
        idle.start()
        time.sleep(IDLE_S)
        at_rest = idle.stop()["server_rss_peak_mb"]
        usage = Usage(server.pid)
        usage.start()
        started = time.perf_counter()
        back = c_get(port, study)
        seconds = time.perf_counter() - started
        figures = usage.stop()
    instance_mb = len(data) / 2**20
    growth = figures["server_rss_peak_mb"] - at_rest
    return {"instance_mb": round(instance_mb, 1), "received_mb": round(back / 2**20, 1),
            "whole": back >= len(data) - 1024,  # less only its File Meta Information
            "server_rss_idle_mb": at_rest, "server_rss_peak_mb": figures["server_rss_peak_mb"],
            "growth_mb": round(growth, 1), "growth_per_instance_mb": round(growth / instance_mb, 2),
            "seconds": round(seconds, 2), "mb_per_s": round(instance_mb / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="the instance's size (default 256)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as work:
        result = measure(args.mb, Path(work))
    print("| instance MiB | server RSS idle MiB | peak during C-GET | growth | growth/instance "
          "| seconds | MiB/s |\n|--:|--:|--:|--:|--:|--:|--:|")
    print(f"| {result['instance_mb']} | {result['server_rss_idle_mb']} | "
          f"{result['server_rss_peak_mb']} | {result['growth_mb']} | "
          f"{result['growth_per_instance_mb']} | {result['seconds']} | {result['mb_per_s']} |")
    document = {"command": "python -m benchmarks.dimse_get_memory " + " ".join(sys.argv[1:]),
                "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                **result}
    print(json.dumps(document, indent=2))
    if args.out:
        args.out.write_text(json.dumps(document, indent=2))
    if not result["whole"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
