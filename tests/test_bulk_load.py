"""The bulk loader (benchmarks/bulk_load.py) writes what the store path writes: the same
studies loaded by it into one PostgreSQL schema and through the real ingest
(`benchmarks.scale_data.load`, `store_staged`) into another hold the same rows, and servers
on each give the same answers to every request of the scale benchmark."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.scale import requests_for
from benchmarks.scale_data import load, study_counts, study_plan
from storage.backends import Placement
from tests.served_process import served
from tests.storage import postgres_server

asyncpg = postgres_server.asyncpg_or_skip()
from benchmarks.bulk_load import bulk_load, chunks  # noqa: E402 (imports asyncpg)

INSTANCES = 2 * 125 + 60  # two whole studies and one cut short in its second series
DEEP_OFFSET = 100


async def _rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the three tables, keyed by UIDs rather than pks (the real path's study
    pks have gaps: its upsert draws one per instance); blob names and times left out."""
    conn = await asyncpg.connect(dsn)
    try:
        studies = await conn.fetch("SELECT * FROM studies ORDER BY pk")
        series = await conn.fetch("SELECT se.*, st.study_uid FROM series se JOIN studies st "
                                  "ON st.pk = se.study_pk ORDER BY se.pk")
        instances = await conn.fetch(
            "SELECT i.*, se.series_uid, st.study_uid FROM instances i JOIN series se ON "
            "se.pk = i.series_pk JOIN studies st ON st.pk = i.study_pk ORDER BY i.pk")
    finally:
        await conn.close()
    keys = {"pk", "study_pk", "series_pk", "blob_name", "stored_at"}
    return {name: [tuple((k, v) for k, v in row.items() if k not in keys) for row in rows]
            for name, rows in (("studies", studies), ("series", series),
                               ("instances", instances))}


def test_bulk_loaded_rows_and_answers_are_the_store_paths(tmp_path: Path) -> None:
    bulk_dsn = postgres_server.index_dsn(tmp_path / "bulk")
    real_dsn = postgres_server.index_dsn(tmp_path / "real")
    figures = bulk_load(bulk_dsn, INSTANCES, processes=1, studies_per_chunk=2, verify_every=1)
    assert figures["instances"] == INSTANCES
    assert figures["verified"] == INSTANCES - 10  # all but the first of each of 10 series
    work = list(enumerate(study_counts(INSTANCES)))
    stored = load(Placement(tmp_path / "real-data", real_dsn), work, processes=1,
                  concurrency=1, niceness=0, report_every=10**6)
    assert stored.instances == INSTANCES

    bulk, real = asyncio.run(_rows(bulk_dsn)), asyncio.run(_rows(real_dsn))
    assert [len(bulk[t]) for t in bulk] == [3, 10, INSTANCES]
    for table in ("studies", "series", "instances"):
        assert bulk[table] == real[table], table

    plans = [study_plan(index) for index, _ in work]
    common = ["--workers", "1", "--host", "127.0.0.1"]
    with served("--data", str(tmp_path / "bulk-data"), "--index", bulk_dsn, *common) as one, \
            served("--data", str(tmp_path / "real-data"), "--index", real_dsn,
                   *common) as other:
        for plan in plans:
            for name, (path, params) in requests_for(plan, DEEP_OFFSET).items():
                answers = []
                for server in (one, other):
                    answer = requests.get(f"{server.base}/dicomweb{path}", params=params,
                                          headers={"Accept": "application/dicom+json"})
                    assert answer.status_code in (200, 204), (name, answer.text)
                    answers.append(answer.text.replace(server.base, "BASE"))
                assert answers[0] == answers[1], name
                if name.startswith("series_metadata"):  # served without any blob
                    assert answers[0].count('"00080018"') == plan.series[0].size


@pytest.mark.parametrize("instances", [1, 125, 126])
def test_chunks_cover_the_plan(instances: int) -> None:
    work = [item for chunk in chunks(instances, 2) for item in chunk]
    assert sum(count for _, count in work) == instances
    assert [index for index, _ in work] == list(range(len(work)))
