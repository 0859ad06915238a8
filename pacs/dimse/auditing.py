"""What the audit log (pacs/service/audit.py) records of the DICOM gateway: one line per
request a peer makes and per association refused, the calling AE title as the identity
(`ae:TITLE`), its address as the client, the DIMSE service as the method, the store as the
resource, and the DIMSE status; as the HTTP door records its requests."""

from typing import Any

from pynetdicom.association import Association

from pacs.service.audit import AuditLog

DENIED = frozenset({0x0124})  # Refused: Not Authorized (PS3.7 C.4.4)
SUCCESSES = frozenset({0x0000, 0xFE00})  # success, and a cancel the peer asked for


class DimseAudit:
    """The gateway's side of the audit log; records nothing without one."""

    def __init__(self, log: AuditLog | None) -> None:
        self._log = log

    def record(self, association: Association, method: str, permission: str, resource: str,
               status: int, outcome: str = "", **details: Any) -> None:
        """A line for `method` (C-STORE, C-FIND…) asked on `association`, answered `status`;
        its outcome unless given: a warning status (0xBxxx, PS3.7 C.4) is a success."""
        if self._log is None:
            return
        requestor = association.requestor
        request = requestor.primitive  # before negotiation, the title is only there
        title = requestor.ae_title or (request.calling_ae_title if request else "")
        self._log.record({
            "identity": f"ae:{str(title).strip()}", "client": requestor.address,
            "method": method, "permission": permission, "resource": resource,
            "status": status, "outcome": outcome or ("success" if status in SUCCESSES or
                                                     status >> 12 == 0xB else
                                                     "denied" if status in DENIED else
                                                     "failure"), **details})

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
