"""Storage Commitment Push Model (PS3.4 J.3): a modality asks by N-ACTION whether the archive
keeps the instances it sent, before it deletes its own copies. Every instance is durable
before its C-STORE (or STOW) succeeded, so the answer is what the store holds now: an
N-EVENT-REPORT naming each instance kept (Referenced SOP Sequence) and each not (Failed SOP
Sequence, with why), sent on the requesting association while it is open, else on one of our
own to the requestor as a known peer (J.3.3, with SCP/SCU role selection)."""

import logging
import time
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from pacs.dimse.find import Run
from pacs.dimse.get import matched
from pacs.dimse.peers import Peer
from pacs.service.archive import Archive
from pacs.service.stores import StoreContext

log = logging.getLogger("pacs")
INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP Instance (PS3.4 J.3.5)
REQUEST_COMMIT = 1  # Action Type ID (J.3.2.1)
ALL_KEPT, SOME_FAILED = 1, 2  # Event Type ID (J.3.3.1)
NO_SUCH_INSTANCE, CLASS_INSTANCE_CONFLICT = 0x0112, 0x0119  # Failure Reason (J.3.3.1.1)
INVALID_ARGUMENT, NO_SUCH_ACTION = 0x0115, 0x0123  # N-ACTION statuses (PS3.7 10.1.4.1.10)
LOOKUP_BATCH = 100  # instances looked up in one index query
SETTLE_SECONDS = 0.5  # before answering on the request's association, if it stays open
SAME_ASSOCIATION_WAIT_SECONDS = 5.0  # for the requestor's answer to the report there


def request_problem(action_type: int | None, information: Dataset | None) -> int | None:
    """The N-ACTION status refusing a request that is not a commitment request (J.3.2.1):
    no such action, or no Transaction UID or Referenced SOP Sequence; None if it is one."""
    if action_type != REQUEST_COMMIT:
        return NO_SUCH_ACTION
    if information is None or not str(information.get("TransactionUID", "")).strip() or \
            not information.get("ReferencedSOPSequence"):
        return INVALID_ARGUMENT
    return None


def report(archive: Archive, store: StoreContext, information: Dataset, ae_title: str,
           run: Run) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information answering a commitment request (J.3.3.1.1)."""
    asked = [(str(item.get("ReferencedSOPClassUID", "")),
              str(item.get("ReferencedSOPInstanceUID", "")))
             for item in information.ReferencedSOPSequence]
    held = dict(_held(archive, store, [sop for _, sop in asked if sop], run))
    kept, failed = [], []
    for sop_class, sop in asked:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop
        if held.get(sop) == sop_class:
            item.RetrieveAETitle = ae_title
            kept.append(item)
        else:
            item.FailureReason = NO_SUCH_INSTANCE if sop not in held else \
                CLASS_INSTANCE_CONFLICT
            failed.append(item)
    event = Dataset()
    event.TransactionUID = information.TransactionUID
    event.RetrieveAETitle = ae_title
    if kept:
        event.ReferencedSOPSequence = kept
    if failed:
        event.FailedSOPSequence = failed
    return (SOME_FAILED if failed else ALL_KEPT), event


def _held(archive: Archive, store: StoreContext, uids: list[str],
          run: Run) -> Iterator[tuple[str, str]]:
    """(SOP Instance UID, SOP Class UID) of each of `uids` the store holds."""
    for start in range(0, len(uids), LOOKUP_BATCH):
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.SOPInstanceUID = uids[start:start + LOOKUP_BATCH]
        found = matched(archive, store, identifier, run)
        if isinstance(found, Dataset):  # a UID the index cannot match: none held
            continue
        yield from ((item.sop_uid, item.sop_class_uid) for item in found)


def send(association: Association, peer: Peer | None, reach: dict[str, Any], event_type: int,
         event: Dataset, ae_title: str, timeout: float) -> str:
    """Send the report: on `association` while it is open, else on a new association from
    `ae_title` to `peer`, reached as `reach` says (its AE title, TLS); where it went (for
    the log); RuntimeError if it was not taken."""
    time.sleep(SETTLE_SECONDS)  # a requestor that releases at once has asked to by now
    if association.is_established and \
            not isinstance(association.dul.peek_next_pdu(), A_RELEASE):
        association.dimse_timeout = min(SAME_ASSOCIATION_WAIT_SECONDS, timeout)
        try:
            status, _ = association.send_n_event_report(event, event_type,
                                                        StorageCommitmentPushModel, INSTANCE)
            if status and status.Status == 0x0000:
                return "on the same association"
        except (RuntimeError, ValueError) as exc:
            log.info("storage commitment report not sent on the same association: %s", exc)
    if peer is None:
        raise RuntimeError("the requestor has released its association and is not a known "
                           "peer (--dimse-peer) to send it to")
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(StorageCommitmentPushModel)
    reverse = ae.associate(peer.host, peer.port, **reach,
                           ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
    if not reverse.is_established:
        raise RuntimeError(f"{peer} did not accept an association")
    try:
        status, _ = reverse.send_n_event_report(event, event_type,
                                                StorageCommitmentPushModel, INSTANCE)
        if not status or status.Status != 0x0000:
            raise RuntimeError(f"{peer} answered the report with "
                               f"{f'0x{status.Status:04X}' if status else 'nothing'}")
    finally:
        reverse.release()
    return f"on a new association to {peer}"
