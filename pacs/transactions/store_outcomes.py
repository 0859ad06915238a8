"""What became of each instance a Store request carried (PS3.18 10.5.3): storing a built or
received Part 10 blob (blob durable, then the index row), and the response dataset."""

from dataclasses import dataclass
from typing import Any

import anyio

from pacs.archive import Archive
from pacs.errors import OUT_OF_RESOURCES, PROCESSING_FAILURE
from pacs.http.resource_urls import instance_url, study_url
from storage.ingest import IngestRecord
from storage.protocols import BlobStore, StagedBlob
from storage.rows import AddOutcome

GOOGLE_CREATOR = "GOOGLE"


@dataclass
class Outcome:
    """What became of one part: the few UIDs its response item needs, or why it failed."""

    sop_class_uid: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    reason: int = 0
    detail: str = ""

    def fail(self, reason: int, detail: str) -> None:
        self.reason, self.detail = reason, detail


async def commit(archive: Archive, store_id: int, staged: StagedBlob, record: IngestRecord,
                  result: Outcome) -> None:
    """Blob durable first, then the index row; a refused row removes its blob again."""
    size, sha256 = staged.size, staged.sha256
    blobs: BlobStore = archive.blobs
    try:
        name = await anyio.to_thread.run_sync(blobs.commit, staged)
    except OSError as exc:
        await anyio.to_thread.run_sync(staged.discard)
        result.fail(OUT_OF_RESOURCES, f"the instance could not be written: {exc.strerror}")
        return
    try:
        outcome = await archive.index.add_instance(store_id, record, name, size, sha256)
    except BaseException:
        await anyio.to_thread.run_sync(blobs.delete, name)
        raise
    if outcome is not AddOutcome.STORED:
        await anyio.to_thread.run_sync(blobs.delete, name)
    if outcome is AddOutcome.CONFLICT:
        result.fail(PROCESSING_FAILURE, f"an instance with SOPInstanceUID {record.sop_uid} "
                    "already exists with different content; the stored instance is unchanged")
    elif outcome is AddOutcome.SERIES_CONFLICT:
        result.fail(PROCESSING_FAILURE, f"SeriesInstanceUID {record.series_uid} already "
                    f"belongs to another study than {record.study_uid}")


def response_dataset(root: str, study: str | None, results: list[Outcome]) -> dict[str, Any]:
    """Store Instances Response Module (PS3.18 Table 10.5.3-2), as DICOM JSON."""
    stored, failed = [], []
    for result in results:
        item: dict[str, Any] = {}
        if result.sop_class_uid:
            item["00081150"] = {"vr": "UI", "Value": [result.sop_class_uid]}
        if result.sop_uid:
            item["00081155"] = {"vr": "UI", "Value": [result.sop_uid]}
        if result.reason:
            item["00081197"] = {"vr": "US", "Value": [result.reason]}
            item["00090010"] = {"vr": "LO", "Value": [GOOGLE_CREATOR]}
            item["00091097"] = {"vr": "LT", "Value": [result.detail]}
            failed.append(item)
        else:
            item["00081190"] = {"vr": "UR", "Value": [instance_url(
                root, result.study_uid, result.series_uid, result.sop_uid)]}
            stored.append(item)
    studies = {r.study_uid for r in results if r.study_uid}
    target = study or (studies.pop() if len(studies) == 1 else None)
    # RetrieveURL is Type 2 (PS3.18 Table I.1-1): empty when the parts span several studies.
    body: dict[str, Any] = {"00081190": {"vr": "UR", "Value": [study_url(root, target)]}
                            if target else {"vr": "UR"}}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    return body
