"""The server's Prometheus metrics (prometheus-client): one definition of each, used by the
layers that count. With several worker processes the supervisor points
PROMETHEUS_MULTIPROC_DIR at a directory of the data directory before they start, and a
scrape of any worker reads them all."""

import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter("pacs_http_requests", "HTTP requests answered, by route template, "
                   "method and status", ["route", "method", "status"])
LATENCY = Histogram("pacs_http_request_duration_seconds", "Time from a request's arrival to "
                    "the end of its answer, by route template and method", ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
BYTES_IN = Counter("pacs_http_request_bytes", "Request body bytes received, by route",
                   ["route"])
BYTES_OUT = Counter("pacs_http_response_bytes", "Response body bytes sent, by route", ["route"])
INSTANCES = Counter("pacs_instances", "Instances the archive was asked to keep, by result "
                    "(stored, duplicate, failed)", ["result"])
CACHE_LOOKUPS = Counter("pacs_cache_lookups", "Cache lookups, by cache and result (hit, "
                        "miss)", ["cache", "result"])

PIXEL_JOBS = Gauge("pacs_pixel_jobs", "Pixel jobs (decoding, encoding, rendering) running in a "
                   "pixel worker thread, or waiting for one (the pixel work queue)", ["state"],
                   multiprocess_mode="livesum")


def exposition(store_sizes: list[tuple[str, int, int]]) -> bytes:
    """The text format of every metric (of every worker process), with each store's
    instances and blob bytes (store name, instances, bytes) as gauges."""
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    sizes = CollectorRegistry()
    sizes.register(_StoreSizes(store_sizes))
    return generate_latest(registry) + generate_latest(sizes)


class _StoreSizes(Collector):
    def __init__(self, sizes: list[tuple[str, int, int]]) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[Metric]:
        instances = GaugeMetricFamily("pacs_store_instances", "Instances in each store",
                                      labels=["store"])
        size = GaugeMetricFamily("pacs_store_blob_bytes", "Bytes of the instances in each "
                                 "store", labels=["store"])
        for name, count, total in self._sizes:
            instances.add_metric([name], count)
            size.add_metric([name], total)
        yield instances
        yield size
