"""Store, study and series metrics and an instance's storage info, as the Cloud Healthcare API
reports them (spec 2.4): counts and sizes as strings (int64 in JSON), names as resource
paths."""

from typing import Any

from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.retrieve import locate
from pacs.service.stores import StoreContext
from pacs.service.targets import Target
from storage.rows import Metrics, StoreRow


def _sizes(metrics: Metrics) -> dict[str, str]:
    return {"structuredStorageSizeBytes": str(metrics.structured_bytes),
            "blobStorageSizeBytes": str(metrics.blob_bytes)}


async def store_metrics(archive: Archive, store: StoreContext) -> dict[str, Any]:
    metrics = await archive.index.metrics(store.id)
    return {"name": store.name, "studyCount": str(metrics.studies),
            "seriesCount": str(metrics.series), "instanceCount": str(metrics.instances),
            **_sizes(metrics)}


async def store_sizes(archive: Archive) -> list[tuple[StoreRow, Metrics]]:
    """Every store with what it holds (for `pacs stores list` and the Prometheus gauges)."""
    return [(row, await archive.index.metrics(row.id))
            for dataset in await archive.index.dataset_names()
            for row in await archive.index.list_stores(dataset, "", -1)]


async def study_metrics(archive: Archive, store: StoreContext, target: Target
                        ) -> dict[str, Any]:
    metrics = await _found(archive, store, target)
    return {"study": f"{store.name}/dicomWeb/studies/{target.study}",
            "seriesCount": str(metrics.series), "instanceCount": str(metrics.instances),
            **_sizes(metrics)}


async def series_metrics(archive: Archive, store: StoreContext, target: Target
                         ) -> dict[str, Any]:
    metrics = await _found(archive, store, target)
    return {"series": f"{store.name}/dicomWeb/studies/{target.study}/series/{target.series}",
            "instanceCount": str(metrics.instances), **_sizes(metrics)}


async def storage_info(archive: Archive, store: StoreContext, target: Target
                       ) -> dict[str, Any]:
    [item] = await locate(archive, store, target)
    [row] = await archive.index.metadata(store.id, target.study, target.series,
                                         target.instance)
    structured = len(row.metadata) + len(item.frames_json) + len(item.bulk_json)
    return {"referencedResource": f"{store.name}/dicomWeb/studies/{target.study}/series/"
                                  f"{target.series}/instances/{target.instance}",
            "structuredStorageInfo": {"sizeBytes": str(structured)},
            "blobStorageInfo": {"sizeBytes": str(item.blob_size),
                                "storageClass": item.storage_class}}


async def _found(archive: Archive, store: StoreContext, target: Target) -> Metrics:
    metrics = await archive.index.metrics(store.id, target.study, target.series)
    if not metrics.instances:
        raise NotFound(f"{target.describe()} not found")
    return metrics
