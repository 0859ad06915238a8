"""Ingest and search with one and three replicas on PostgreSQL and S3, beside the embedded
default, on this machine (issue 15):

    python -m benchmarks.replicas [--series 40] [--instances 15] [--searches 1000]
                                  [--concurrency 16] [--out results.json]

It starts a throwaway PostgreSQL cluster and a SeaweedFS bucket (as the tests do), then for
each setup its `pacs serve` processes and, for three replicas, nginx with deploy/nginx.conf
(its upstreams pointed at them). Each setup gets a fresh index and bucket prefix, stores
`series` x `instances` generated CT instances (single-part STOW, `concurrency` at once), then
runs `searches` study searches by lower-case patient name prefix, each verified to find
exactly its study. The machine's cores are shared by every process, the databases included:
compare the setups with each other, not with a cluster of machines."""

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.dataset import CTFactory, Series
from benchmarks.dicomweb import DicomWebClient, Query, open_session, stow_request
from benchmarks.timing import run_pool, summarise
from tests.served_process import free_port, served
from tests.storage import postgres_server, s3_server

ROOT = Path(__file__).parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
# (label, replicas, workers each, on PostgreSQL and S3)
SETUPS = [("embedded (SQLite + files), 1 replica x 2 workers", 1, 2, False),
          ("PostgreSQL + S3, 1 replica x 2 workers", 1, 2, True),
          ("PostgreSQL + S3, 3 replicas x 1 worker, nginx", 3, 1, True)]


@contextlib.contextmanager
def nginx(ports: list[int], work: Path) -> Iterator[int]:
    """deploy/nginx.conf in front of 127.0.0.1:`ports`, on a free port of its own."""
    listen = free_port()
    conf = NGINX_CONF.read_text()
    conf = re.sub(r"(?m)^\s*server pacs\d:8080[^\n]*\n", "", conf)
    upstreams = "".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"
                        for p in ports)
    conf = conf.replace("        least_conn;\n", "        least_conn;\n" + upstreams)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {work / 'nginx.pid'};")
    path = work / "nginx.conf"
    path.write_text(conf)
    process = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(path),
                                "-p", str(work), "-g", "daemon off;"])
    try:
        time.sleep(0.5)
        assert process.poll() is None, "nginx did not start"
        yield listen
    finally:
        process.terminate()
        process.wait(timeout=30)


async def load(base: str, data: list[Series], searches: int, concurrency: int
               ) -> dict[str, Any]:
    """Store every instance of `data`, then search; the figures of each."""
    async with open_session(concurrency) as session:
        client = DicomWebClient(session, f"{base}/dicomweb")
        stores = [partial(client.store, stow_request([i], single_part=True))
                  for series in data for i in series.instances]
        stored = summarise(await run_pool(stores, concurrency), concurrency, "instances")
        queries = [Query("/studies", {"PatientName": s.patient_name.lower()[:-2] + "*"},
                         "0020000D", frozenset({s.study_uid}), 1) for s in data]
        jobs = [partial(client.search, queries[n % len(queries)]) for n in range(searches)]
        searched = summarise(await run_pool(jobs, concurrency), concurrency)
    return {"stow": stored, "qido": searched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--instances", type=int, default=15, help="per series")
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    factory = CTFactory()
    bucket = s3_server.shared()
    results = []
    for label, replicas, workers, scaled in SETUPS:
        run = uuid.uuid4().hex[:6].upper()
        data = [factory.series(args.instances, f"REPLICA{n:03d}^{run}", f"P{n}")
                for n in range(args.series)]
        with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
            where = Path(work)
            backend = ["--index", postgres_server.index_dsn(where / "index"),
                       "--blobs", f"s3://{s3_server.BUCKET}/{run.lower()}"] if scaled else []
            ports = [free_port() for _ in range(replicas)]
            for number, port in enumerate(ports):
                stack.enter_context(served(
                    "--port", str(port), "--data", str(where / f"replica{number}"), *backend,
                    "--workers", str(workers), "--log-level", "warning", port=port,
                    env=bucket.env))
            base = f"http://127.0.0.1:{ports[0]}"
            if replicas > 1:
                base = f"http://127.0.0.1:{stack.enter_context(nginx(ports, where))}"
            figures = asyncio.run(load(base, data, args.searches, args.concurrency))
        results.append({"setup": label, **figures})
        stow, qido = figures["stow"], figures["qido"]
        print(f"{label}: STOW {stow['instances_per_s']} instances/s (p95 {stow['p95_ms']} ms, "
              f"{stow['ok']}/{stow['requests']} ok); QIDO {qido['requests_per_s']} req/s "
              f"(p50 {qido['p50_ms']} ms, p95 {qido['p95_ms']} ms, "
              f"{qido['ok']}/{qido['requests']} ok)", flush=True)
    document = {"series": args.series, "instances_per_series": args.instances,
                "searches": args.searches, "concurrency": args.concurrency,
                "results": results}
    print(json.dumps(document, indent=2))
    if args.out:
        args.out.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
