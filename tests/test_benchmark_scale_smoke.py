"""The scale benchmark at smoke size, so it cannot rot: two checkpoints, the second continuing
the archive the first filled. Only that every request was measured and matched is asserted,
never how fast."""

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pydicom

from benchmarks.scale_data import SeriesEncoder, sop_uid, study_plan


def test_scale_smoke_run_measures_every_request_at_each_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--instances", "600", "--checkpoints", "300",
         "--data", str(tmp_path / "data"), "--out", str(out), "--repeats", "3", "--warmup", "1",
         "--stow-instances", "32"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    document = orjson.loads(out.read_bytes())
    assert document["machine"]["cpu_count"] > 0
    assert "store_staged" in document["loader"]["method"]
    first, second = document["checkpoints"]
    assert (first["instances"], second["instances"]) == (300, 600)
    # 300 = two studies and 50 instances of a third; 600 takes that third whole (its 50 again,
    # as duplicates), a fourth and 100 of a fifth.
    assert (first["load"]["instances"], second["load"]["instances"]) == (300, 350)
    for point in (document["empty"], first, second):
        assert all(seconds > 0 for seconds in point["ready"].values()), point["ready"]
        assert point["stow"]["ok"] == point["stow"]["requests"] == 32, point["stow"]
    for point in (first, second):
        assert len(point["queries"]) == 15
        for name, figures in point["queries"].items():
            assert figures["status"] == {"200": 3}, (name, figures)
            assert figures["results_min"] > 0, (name, figures)
            assert 0 < figures["p50_ms"] <= figures["p95_ms"], (name, figures)
    assert "| `/studies?PatientName=*smi*` (OHIF list) |" in result.stdout


def test_series_encoder_writes_what_pydicom_writes() -> None:
    study = study_plan(3)  # a PET/CT study: CT and PT series
    for series in study.series:
        encoder = SeriesEncoder(study, series)
        for number in (1, series.size):
            data = encoder.encode(number)
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.SOPInstanceUID == sop_uid(study, series, number)
            assert (ds.InstanceNumber, ds.Modality) == (number, series.modality)
            rewritten = io.BytesIO()
            ds.save_as(rewritten, enforce_file_format=True)
            assert rewritten.getvalue() == data
