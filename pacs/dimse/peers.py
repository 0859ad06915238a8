"""AE titles and the known DICOM peers of the gateway (`--ae-title`, `--dimse-peer`)."""

from dataclasses import dataclass


def ae_title(text: str) -> str:
    """An AE title as PS3.5 6.2 (VR AE) allows it: 1 to 16 characters of the default
    repertoire, no backslash or control character, not only spaces (which are not
    significant at either end); ValueError otherwise."""
    title = text.strip(" ")
    if not 0 < len(title) <= 16 or not title.isascii() or "\\" in title or \
            any(ord(c) < 0x20 or ord(c) == 0x7F for c in title):
        raise ValueError(f"{text[:40]!r} is not an AE title: 1 to 16 ASCII characters, no "
                         "backslash or control character")
    return title


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity the gateway knows: who may associate, and where C-MOVE
    sends (TITLE@HOST:PORT)."""

    title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Peer":
        """TITLE@HOST:PORT; ValueError naming what is wrong."""
        title, at, address = text.rpartition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text[:80]!r} is not a DICOM peer: give TITLE@HOST:PORT")
        return cls(ae_title(title), host.strip("[]"), int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.title}@{host}:{self.port}"
