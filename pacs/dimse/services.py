"""What the gateway answers (PS3.4 Annex A Verification, Annex B Storage): each DIMSE
request handled through the service layer, as its DICOMweb transaction is."""

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from pacs.dimse.admission import NOT_AUTHORIZED, Admission
from pacs.dimse.auditing import DimseAudit
from pacs.dimse.bridge import Bridge
from pacs.dimse.commitment import INVALID_ARGUMENT, report, request_problem, send
from pacs.dimse.find import CANCELLED, failure, find
from pacs.dimse.get import get, matched
from pacs.dimse.move import move
from pacs.dimse.worklist import worklist
from pacs.service.archive import Archive
from pacs.service.store_instances import store_file
from storage.rows import InstanceLocation

log = logging.getLogger("pacs")
SUCCESS = 0x0000
UNKNOWN_DESTINATION = 0xA801  # PS3.4 C.4.2.1.5: Move Destination unknown


class Services:
    """The handlers of one gateway, bound to its archive; `admission` names the store each
    association reaches and what its peer may do."""

    def __init__(self, archive: Archive, admission: Admission, bridge: Bridge,
                 audit: DimseAudit) -> None:
        self._archive, self._admission, self._bridge = archive, admission, bridge
        self._audit = audit
        self._tallies: dict[int, Counter[str]] = defaultdict(Counter)  # by association

    def echo(self, event: Event) -> int:
        """C-ECHO (PS3.7 9.1.5): success while the gateway runs, for any admitted peer."""
        return SUCCESS

    def store(self, event: Event) -> int:
        """C-STORE (PS3.4 B.2.3): the received file stored as STOW stores a Part 10 body,
        with the same checks and duplicate and conflict rules; a failure's status is the
        one a STOW response item would carry (pacs/service/failures.py)."""
        tally = self._tallies[id(event.assoc)]
        resource = self._admission.store_name(event.assoc)
        sop = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
        if not self._admission.allows(event, "store"):
            tally["refused"] += 1
            self._audit.record(event.assoc, "C-STORE", "store", resource, NOT_AUTHORIZED,
                               instance=sop)
            return NOT_AUTHORIZED
        path = Path(event.dataset_path)  # pynetdicom wrote it to a file as it arrived
        outcome = self._bridge.run(store_file(
            self._archive, self._admission.store(event.assoc), path))
        status = SUCCESS if outcome.reason is None else outcome.reason.code
        self._audit.record(event.assoc, "C-STORE", "store", resource, status,
                           instance=outcome.sop_uid or sop)
        if outcome.reason is None:
            tally["stored"] += 1
            return SUCCESS
        tally["refused"] += 1
        log.warning("C-STORE from %s of %s refused (0x%04X): %s", _calling(event),
                    outcome.sop_uid or "an unreadable dataset", outcome.reason.code,
                    outcome.detail)
        return status

    def find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """C-FIND (PS3.4 C.4.1, and K.6 of a worklist): QIDO's matching, or the worklist
        folder's; stops when the peer cancels."""
        tally = self._tallies[id(event.assoc)]
        tally["queries"] += 1
        of_worklist = event.context.abstract_syntax == ModalityWorklistInformationFind
        resource = "worklist" if of_worklist else self._admission.store_name(event.assoc)
        if not self._admission.allows(event, "find"):
            self._audit.record(event.assoc, "C-FIND", "find", resource, NOT_AUTHORIZED)
            yield _refused("find"), None
            return
        answers = worklist(self._archive.settings.worklist_dir, event.identifier) \
            if of_worklist else find(self._archive, self._admission.store(event.assoc),
                                     event.identifier, self._bridge.run)
        final, matches = SUCCESS, 0
        for status, identifier in answers:
            if event.is_cancelled:
                final = CANCELLED
                break
            if isinstance(status, Dataset):  # a failure, and its comment
                final = int(status.Status)
            matches += identifier is not None
            yield status, identifier
        self._audit.record(event.assoc, "C-FIND", "find", resource, final, matches=matches)
        if final == CANCELLED:
            yield CANCELLED, None

    def get(self, event: Event) -> Iterator[Any]:
        """C-GET (PS3.4 C.4.3): the matches sent back over this association."""
        self._tallies[id(event.assoc)]["retrieves"] += 1
        accepted: dict[str, list[str]] = {}
        for context in event.assoc.accepted_contexts:
            if context.as_scu and context.abstract_syntax and context.transfer_syntax:
                accepted.setdefault(context.abstract_syntax, []).append(
                    context.transfer_syntax[0])
        yield from get(self._archive, self._matched(event, "get", "C-GET"), accepted,
                       self._bridge.run, lambda: event.is_cancelled)

    def move(self, event: Event) -> Iterator[Any]:
        """C-MOVE (PS3.4 C.4.2): the matches sent to a known peer; an unknown one is
        answered A801H by pynetdicom."""
        self._tallies[id(event.assoc)]["retrieves"] += 1
        title = str(event.move_destination.decode() if isinstance(event.move_destination, bytes)
                    else event.move_destination).strip()
        destination = self._admission.peers.get(title)
        if destination is None:
            log.warning("C-MOVE from %s to %r refused: not a known peer (--dimse-peer)",
                        _calling(event), title)
            self._audit.record(event.assoc, "C-MOVE", "move",
                               self._admission.store_name(event.assoc), UNKNOWN_DESTINATION,
                               destination=title)
            yield None, None
            return
        yield from move(self._archive, self._matched(event, "move", "C-MOVE", str(destination)),
                        destination, self._admission.reach(destination), event.assoc,
                        self._bridge.run, lambda: event.is_cancelled)

    def commit(self, event: Event) -> tuple[int, Dataset | None]:
        """N-ACTION of Storage Commitment (PS3.4 J.3.2), for peers that may store: accepted
        at once, then answered by an N-EVENT-REPORT from a thread of its own, which
        pynetdicom lets speak once the N-ACTION response has gone."""
        status, transaction = self._commitment(event)
        self._audit.record(event.assoc, "N-ACTION", "store",
                           self._admission.store_name(event.assoc), status,
                           transaction=transaction)
        return status, None

    def _commitment(self, event: Event) -> tuple[int, str]:
        """The N-ACTION's status and Transaction UID; its report on its way if accepted."""
        if not self._admission.allows(event, "store"):
            return NOT_AUTHORIZED, ""
        try:
            information = event.action_information
            problem = request_problem(event.action_type, information)
        except Exception as exc:  # pynetdicom decodes on first access: a malformed request
            log.warning("storage commitment request from %s unreadable: %s",
                        _calling(event), exc)
            return INVALID_ARGUMENT, ""
        if problem is not None:
            log.warning("storage commitment request from %s refused (0x%04X)",
                        _calling(event), problem)
            return problem, str(information.get("TransactionUID", ""))
        threading.Thread(target=self._report, args=(event.assoc, information),
                         name="pacs-dimse-commitment", daemon=True).start()
        return SUCCESS, str(information.TransactionUID)

    def _report(self, association: Association, information: Dataset) -> None:
        """Find what the request names, then send the report and log its fate."""
        calling = str(association.requestor.ae_title).strip()
        transaction = information.TransactionUID
        try:
            called = self._admission.called(association)
            event_type, event = report(self._archive, self._admission.store(association),
                                       information, called, self._bridge.run)
            peer = self._admission.peers.get(calling)
            where = send(association, peer, self._admission.reach(peer) if peer else {},
                         event_type, event, called,
                         self._archive.settings.dimse_timeout_seconds)
        except Exception as exc:
            log.warning("storage commitment %s for %s not reported: %s", transaction, calling,
                        exc)
            return
        log.info("storage commitment %s for %s: %d kept, %d not, reported %s", transaction,
                 calling, len(event.get("ReferencedSOPSequence", [])),
                 len(event.get("FailedSOPSequence", [])), where)

    def _matched(self, event: Event, action: str, method: str,
                 destination: str = "") -> list[InstanceLocation] | Dataset:
        """What a retrieve's identifier names in the association's store, or the failure
        to answer with (the peer may not retrieve that way, or the identifier is wrong);
        audited as asked (the sub-operations' fate is pynetdicom's to report)."""
        found = _refused(action) if not self._admission.allows(event, action) else \
            matched(self._archive, self._admission.store(event.assoc), event.identifier,
                    self._bridge.run)
        status, count = (int(found.Status), 0) if isinstance(found, Dataset) else \
            (SUCCESS, len(found))
        self._audit.record(event.assoc, method, action, self._admission.store_name(event.assoc),
                           status, instances=count,
                           **({"destination": destination} if destination else {}))
        return found

    def ended(self, event: Event) -> None:
        """One line per association, when it is released or aborted (not for a connection
        that never asked for one: a load balancer's or a test's probe of the port)."""
        tally = self._tallies.pop(id(event.assoc), Counter())
        if event.assoc.requestor.primitive is None:
            return
        log.info("DICOM association from %s %s: %d stored, %d refused, %d queries, "
                 "%d retrieves", _calling(event),
                 "released" if event.event is evt.EVT_RELEASED else "aborted",
                 tally["stored"], tally["refused"], tally["queries"], tally["retrieves"])


def _refused(action: str) -> Dataset:
    return failure(f"this AE title may not {action} here", NOT_AUTHORIZED)


def _calling(event: Event) -> str:
    requestor = event.assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}"
