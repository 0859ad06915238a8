"""Domain errors: what the archive refuses and why, named by google.rpc.Code (googleapis
google/rpc/code.proto), which every door maps to its own answer in one place."""

from typing import ClassVar

# google.rpc.Code's numbers, which an Operation's `error.code` carries (code.proto)
RPC_CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3,
             "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
             "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
             "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13,
             "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16}


class ArchiveError(Exception):
    """A request the archive refuses; `code` is its google.rpc.Code name."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ArchiveError):
    """The request itself is wrong: a bad UID, parameter or body."""

    code = "INVALID_ARGUMENT"


class NotFound(ArchiveError):
    """The store, study, series, instance, frame or bulk data asked for does not exist."""

    code = "NOT_FOUND"


class Unauthenticated(ArchiveError):
    """No valid credential came with the request."""

    code = "UNAUTHENTICATED"


class PermissionDenied(ArchiveError):
    """The caller may not do this to this resource (or it may not exist)."""

    code = "PERMISSION_DENIED"


class Cancelled(ArchiveError):
    """A long-running operation stopped because its caller asked it to (spec 2.5)."""

    code = "CANCELLED"


class Aborted(ArchiveError):
    """A read-modify-write lost to a concurrent change (an IAM policy's etag)."""

    code = "ABORTED"


class AlreadyExists(ArchiveError):
    """A dataset or store of that name exists already."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(ArchiveError):
    """What is stored cannot be given in the form asked for (say, 16-bit colour as JPEG)."""

    code = "FAILED_PRECONDITION"


class TooLarge(InvalidArgument):
    """More bytes than one object or request may have."""


class CannotTranscode(FailedPrecondition):
    """An instance cannot be given in the transfer syntax asked for; the message says why."""


class Unavailable(ArchiveError):
    """The archive cannot answer now (a query ran past its time limit); try again."""

    code = "UNAVAILABLE"


class DataLoss(ArchiveError):
    """What the index records is no longer all in the blob store (a blob cut short, or
    gone); the operator must restore it."""

    code = "DATA_LOSS"
