"""The audit log (`pacs serve --audit-log FILE`): one JSON line per guarded action, whichever
door it came through, saying who did what to which resource with what result, in the spirit
of IHE ATNA (PS3.15 A.5): stores, retrieves, searches, deletes, policy changes and every
refusal. Never a token, never pixel data."""

import datetime
import os
from pathlib import Path
from typing import Any

import orjson


class AuditLog:
    """Appends lines with O_APPEND, one write each, so that the processes sharing the file
    (HTTP workers, the DICOM gateway's) do not interleave within a line."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, entry: dict[str, Any]) -> None:
        """One line: the time, then `entry` (identity, client, method, resource, status,
        outcome and what else the door knows)."""
        line = orjson.dumps({
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            **entry}, option=orjson.OPT_APPEND_NEWLINE)
        os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)
