"""Import and export of DICOM files through `gs://` URIs (spec 2.4), as Google's
`dicomStores.import` and `dicomStores.export` do them, with Cloud Storage played by a local
directory: `gs://BUCKET/PATH` is `<gcs_root>/BUCKET/PATH` (the `--gcs-root` setting).

Import takes Google's wildcards (`*` within one path segment, `**` across segments, `?` one
character), skips instances already stored with the same content, and counts successes and
failures in its operation; export writes `{study}/{series}/{instance}.dcm` under the prefix,
overwriting what is there."""

import re
from pathlib import Path
from typing import Any

import anyio

from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument
from pacs.service.management import record_operation
from pacs.service.retrieve import locate
from pacs.service.store_instances import StoreOptions, storage_class, store_file
from pacs.service.stores import StoreContext
from pacs.service.targets import Target
from storage.query import Level, Query

_GS = re.compile(r"gs://([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(?:/(.*))?")
PAGE = 1000  # instances listed at once for an export


def local_path(gcs_root: Path, uri: str) -> tuple[Path, str]:
    """The bucket's directory and the path inside it of a `gs://` URI; InvalidArgument if
    it is not one (or climbs out of the bucket)."""
    found = _GS.fullmatch(uri.strip())
    if found is None:
        raise InvalidArgument(f"{uri[:200]!r} is not a gs://BUCKET/PATH URI")
    path = found[2] or ""
    parts = path.split("/")
    if any(part in ("..", ".") for part in parts) or "" in parts[:-1]:
        # an empty segment would make the rest an absolute path, out of the bucket
        raise InvalidArgument(f"{uri[:200]!r}: '.', '..' and empty segments are not allowed "
                              "in a path")
    return gcs_root / found[1], path


def _pattern(path: str) -> re.Pattern[str]:
    """Google's import wildcards as a regular expression over paths inside the bucket."""
    out = []
    for i, part in enumerate(re.split(r"(\*\*|\*|\?)", path)):
        out.append({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
                   if i % 2 else re.escape(part))
    return re.compile("".join(out))


def _matching(bucket: Path, path: str) -> list[Path]:
    if not any(c in path for c in "*?"):
        target = bucket / path
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() \
            else [target] if target.is_file() else []
        return files
    pattern = _pattern(path)
    return sorted(p for p in bucket.rglob("*")
                  if p.is_file() and pattern.fullmatch(p.relative_to(bucket).as_posix()))


async def import_files(archive: Archive, store: StoreContext, body: dict[str, Any],
                       version: str) -> dict[str, Any]:
    """Store every file the source URI names; the finished operation, with its counters."""
    uri = str((body.get("gcsSource") or {}).get("uri") or "")
    bucket, path = local_path(archive.settings.gcs_root, uri)
    files = await anyio.to_thread.run_sync(_matching, bucket, path)
    if not files:
        raise InvalidArgument(f"no file matches {uri[:200]!r}")
    options = StoreOptions(storage_class=storage_class(
        (body.get("blobStorageSettings") or {}).get("blobStorageClass")))
    failures: list[dict[str, Any]] = []
    for file in files:
        outcome = await store_file(archive, store, file, options)
        if not outcome.stored:
            failures.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": outcome.detail,
                             "metadata": {"uri": f"gs://{bucket.name}/"
                                                 f"{file.relative_to(bucket).as_posix()}"}})
    counter = {"success": str(len(files) - len(failures)),
               **({"failure": str(len(failures))} if failures else {})}
    error = {"error": {"code": 3, "message": f"{len(failures)} of {len(files)} files could not "
                       "be imported", "details": failures}} if failures else {}
    operation = await record_operation(
        archive, store.name.split("/dicomStores/")[0],
        f"google.cloud.healthcare.{version}.dicom.DicomService.ImportDicomData",
        {"@type": f"type.googleapis.com/google.cloud.healthcare.{version}.dicom."
                  "ImportDicomDataResponse"}, version, counter)
    if error:
        operation.pop("response", None)
        operation.update(error)
    return operation


async def export_files(archive: Archive, store: StoreContext, body: dict[str, Any],
                       version: str) -> dict[str, Any]:
    """Write every instance of the store under the destination prefix as Part 10 files."""
    uri = str((body.get("gcsDestination") or {}).get("uriPrefix") or "")
    bucket, prefix = local_path(archive.settings.gcs_root, uri)
    target_dir = bucket / prefix
    written = 0
    offset = 0
    while True:
        page = await archive.index.search(store.id, Query(Level.INSTANCE, limit=PAGE,
                                                         offset=offset))
        for row in page.rows:
            assert row.series_uid is not None and row.sop_uid is not None
            [item] = await locate(archive, store, Target(row.study_uid, row.series_uid,
                                                         row.sop_uid))
            data = await anyio.to_thread.run_sync(archive.blobs.read, item.blob_name, 0,
                                                  item.blob_size)
            destination = target_dir / row.study_uid / row.series_uid / f"{row.sop_uid}.dcm"
            await anyio.to_thread.run_sync(_write, destination, data)
            written += 1
        if not page.more:
            break
        offset += PAGE
    return await record_operation(
        archive, store.name.split("/dicomStores/")[0],
        f"google.cloud.healthcare.{version}.dicom.DicomService.ExportDicomData",
        {"@type": f"type.googleapis.com/google.cloud.healthcare.{version}.dicom."
                  "ExportDicomDataResponse"}, version, {"success": str(written)})


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
