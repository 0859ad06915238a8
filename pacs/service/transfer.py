"""Import and export of DICOM files through `gs://` URIs (spec 2.4), as Google's
`dicomStores.import` and `dicomStores.export` do them, with Cloud Storage played by a local
directory: `gs://BUCKET/PATH` is `<gcs_root>/BUCKET/PATH` (the `--gcs-root` setting).

Both are jobs (`pacs/service/jobs.py`): the request is checked and answered with the
operation's name, and the work runs after it, resumable from its saved state. Import takes
Google's wildcards (`*` within one path segment, `**` across segments, `?` one character),
skips instances already stored with the same content, and counts successes and failures in
its operation; export writes `{study}/{series}/{instance}.dcm` under the prefix, overwriting
what is there."""

import re
from pathlib import Path
from typing import Any

import anyio

from pacs.service.archive import Archive
from pacs.service.errors import DataLoss, InvalidArgument
from pacs.service.export_files import ExportItem, write_file
from pacs.service.jobs import Job, PartlyFailed, start_job
from pacs.service.store_instances import StoreOptions, storage_class, store_file
from pacs.service.stores import StoreContext

_GS = re.compile(r"gs://([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(?:/(.*))?")
PAGE = 1000  # instances listed at once for an export
MAX_DETAILS = 100  # failed files an import's error names
AS_STORED = ("", "application/dicom;transfer-syntax=*")  # export mimeTypes, spaces removed


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


async def start_import(archive: Archive, store: StoreContext, body: dict[str, Any],
                       version: str) -> dict[str, Any]:
    """Check the request and start the import; the operation's name."""
    local_path(archive.settings.gcs_root, _source(body))
    storage_class(_storage_class(body))
    return await start_job(archive, store, "import", f"google.cloud.healthcare.{version}.dicom."
                           "DicomService.ImportDicomData", body, version)


async def run_import(archive: Archive, job: Job) -> dict[str, Any]:
    """Store every file the source URI names, in path order from where the job got to; each
    file's outcome is counted (a file stored already with the same bytes is a success)."""
    store = await archive.stores.get(job.work["store"])
    uri = _source(job.request)
    bucket, path = local_path(archive.settings.gcs_root, uri)
    files = await anyio.to_thread.run_sync(_matching, bucket, path)
    if not files:
        raise InvalidArgument(f"no file matches {uri[:200]!r}")
    options = StoreOptions(storage_class=storage_class(_storage_class(job.request)))
    state = job.state
    cursor, success, failure = (state.setdefault(key, 0) for key in ("cursor", "success",
                                                                       "failure"))
    failures: list[dict[str, Any]] = state.setdefault("failures", [])
    for file in files[cursor:]:
        job.check()
        try:
            outcome = await store_file(archive, store, file, options)
            reason = None if outcome.stored else outcome.detail
        except OSError as exc:  # gone or unreadable since it was listed
            reason = f"cannot read it: {exc.strerror or exc}"
        if reason is None:
            success += 1
        else:
            failure += 1
            if len(failures) < MAX_DETAILS:
                failures.append(_failed(reason, f"gs://{bucket.name}/"
                                                f"{file.relative_to(bucket).as_posix()}"))
        cursor += 1
        state.update(cursor=cursor, success=success, failure=failure)
        job.count(success=success, failure=failure, pending=len(files) - cursor)
    if failure:
        raise PartlyFailed(_failed_message(failure, len(files), "files", "imported"), failures)
    return {"@type": f"type.googleapis.com/google.cloud.healthcare.{job.work['version']}.dicom."
                     "ImportDicomDataResponse"}


def _failed(reason: str, what: str) -> dict[str, Any]:
    """One failed item of an operation's error details."""
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
            "metadata": {"uri": what}}


def _failed_message(failed: int, total: int, items: str, done: str) -> str:
    listed = f" (the first {MAX_DETAILS} are listed)" if failed > MAX_DETAILS else ""
    return f"{failed} of {total} {items} could not be {done}{listed}"


def _source(body: dict[str, Any]) -> str:
    return str(_member(body, "gcsSource", "uri") or "")


def _storage_class(body: dict[str, Any]) -> str | None:
    value = _member(body, "blobStorageSettings", "blobStorageClass")
    return None if value is None else str(value)


def _member(body: dict[str, Any], section: str, name: str) -> object:
    """`body[section][name]`, or None where the body has no such object."""
    found = body.get(section)
    return found.get(name) if isinstance(found, dict) else None


async def start_export(archive: Archive, store: StoreContext, body: dict[str, Any],
                       version: str) -> dict[str, Any]:
    """Check the request and start the export; the operation's name. Instances are written
    as stored: a `mimeType` asking for anything else (another transfer syntax, JPEG or PNG
    files, which Google can write) is refused rather than ignored."""
    local_path(archive.settings.gcs_root, _destination(body))
    mime_type = str(_member(body, "gcsDestination", "mimeType") or "")
    if "".join(mime_type.split()).lower() not in AS_STORED:
        raise InvalidArgument(f"exporting as {mime_type[:100]!r} is not supported here: only "
                              "the files as stored (application/dicom; transfer-syntax=*)")
    return await start_job(archive, store, "export", f"google.cloud.healthcare.{version}.dicom."
                           "DicomService.ExportDicomData", body, version)


async def run_export(archive: Archive, job: Job) -> dict[str, Any]:
    """Write every instance of the store under the destination prefix as its Part 10 file,
    byte for byte as stored (and checked against its SHA-256), in the order they were
    stored from where the job got to; a file already there is overwritten."""
    store = await archive.stores.get(job.work["store"])
    bucket, prefix = local_path(archive.settings.gcs_root, _destination(job.request))
    root = bucket / prefix
    state = job.state
    after, success, failure = (state.setdefault(key, 0) for key in ("after", "success",
                                                                      "failure"))
    failures: list[dict[str, Any]] = state.setdefault("failures", [])
    while page := await archive.index.instances_after(after, PAGE, store.id):
        for row in page:
            job.check()
            item = ExportItem(row.study_uid, row.series_uid, row.sop_uid, row.blob_name,
                              row.blob_size, row.sha256)
            try:
                await anyio.to_thread.run_sync(write_file, archive.blobs, root, item)
                success += 1
            except (DataLoss, OSError) as exc:  # a damaged blob; a full or read-only disk
                failure += 1
                if len(failures) < MAX_DETAILS:
                    failures.append(_failed(str(exc), f"/studies/{item.study_uid}/series/"
                                            f"{item.series_uid}/instances/{item.sop_uid}"))
            after = row.pk
            state.update(after=after, success=success, failure=failure)
            job.count(success=success, failure=failure)
    if failure:
        raise PartlyFailed(_failed_message(failure, success + failure, "instances",
                                           "exported"), failures)
    return {"@type": f"type.googleapis.com/google.cloud.healthcare.{job.work['version']}.dicom."
                     "ExportDicomDataResponse"}


def _destination(body: dict[str, Any]) -> str:
    return str(_member(body, "gcsDestination", "uriPrefix") or "")
