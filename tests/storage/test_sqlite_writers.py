"""Processes sharing one SQLite index take turns at writing: one writing back to back never
starves another into "database is locked" (seen after a million stores from two loaders)."""

import subprocess
import sys
from pathlib import Path

WRITER = """
import asyncio, hashlib, sys
from pathlib import Path
import orjson
import storage.index.connection as connection
connection.BUSY_TIMEOUT_MS = 20  # SQLite's own waiting alone would give up at once
from storage.index.sqlite_index import SqliteIndex
from storage.rows import InstanceRecord, Span

async def main(path, name, count):
    index = SqliteIndex(Path(path))
    await index.migrate()
    store = (await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/s",
                                      "full")).id
    failed = 0
    async def add(i):
        nonlocal failed
        study, series, sop = f"1.2.{name}.{i // 100}", f"1.2.{name}.{i // 100}.1", f"1.2.{name}.{i}"
        attrs = {"0020000D": {"vr": "UI", "Value": [study]}}
        record = InstanceRecord(study, series, sop, "1.2.840.10008.5.1.4.1.1.2",
                                "1.2.840.10008.1.2.1", attrs, orjson.dumps(attrs),
                                {"7FE00010": Span(10, 10)}, ((Span(10, 10),),))
        try:
            await index.add_instance(store, record, hashlib.md5(sop.encode()).hexdigest(),
                                     100, hashlib.sha256(sop.encode()).hexdigest())
        except Exception as exc:
            failed += 1
            print(type(exc).__name__, exc, file=sys.stderr)
    for start in range(0, count, 16):
        await asyncio.gather(*(add(i) for i in range(start, min(start + 16, count))))
    await index.close()
    print(failed)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_two_processes_writing_at_once_both_finish(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite3"
    root = Path(__file__).parents[2]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(index), str(n), "3000"],
                                cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for n in (1, 2)]
    results = [writer.communicate(timeout=300) for writer in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err[-2000:]
        assert out.strip() == "0", err[-2000:]
