"""The study, series or instance an operation addresses, its UIDs checked (PS3.5 9.1)."""

from dataclasses import dataclass

from pacs.dicom.uids import is_valid_uid
from pacs.service.errors import InvalidArgument


@dataclass(frozen=True)
class Target:
    """A study, a series in it, or an instance in that."""

    study: str
    series: str | None = None
    instance: str | None = None

    @classmethod
    def of(cls, study: str, series: str | None = None, instance: str | None = None
           ) -> "Target":
        """The target named by these UIDs; InvalidArgument naming a malformed one."""
        for name, value in (("study", study), ("series", series), ("instance", instance)):
            if value is not None:
                check_uid(name, value)
        return cls(study, series, instance)

    @property
    def level(self) -> str:
        """"study", "series" or "instance"."""
        return "instance" if self.instance else "series" if self.series else "study"

    def describe(self) -> str:
        if self.instance is not None:
            return f"instance {self.instance} of series {self.series} in study {self.study}"
        if self.series is not None:
            return f"series {self.series} in study {self.study}"
        return f"study {self.study}"


def check_uid(name: str, value: str) -> str:
    """`value` if it is a UID; InvalidArgument saying what a UID is otherwise."""
    if not is_valid_uid(value):
        raise InvalidArgument(f"invalid {name} UID {value[:80]!r}: a UID is digits and dots, "
                              "at most 64 characters")
    return value
