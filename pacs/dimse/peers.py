"""AE titles, the known DICOM peers of the gateway and what each may do (`--ae-title`,
`--dimse-peer`), and the stores other AE titles of the gateway reach (`--dimse-store`)."""

from dataclasses import dataclass

# what a peer may be allowed (PS3.4 B, C and K); C-ECHO is always allowed
ACTIONS = ("store", "find", "get", "move")


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
    """A DICOM application entity the gateway knows: who may associate, from which host,
    to do what, and where C-MOVE sends (TITLE@HOST:PORT[/ACTION+…])."""

    title: str
    host: str
    port: int
    actions: frozenset[str] = frozenset(ACTIONS)
    tls: bool = False  # reached over TLS (`--dimse-tls-peer`)

    @classmethod
    def parse(cls, text: str) -> "Peer":
        """TITLE@HOST:PORT, then optionally /ACTION+… of ACTIONS (none given: all);
        ValueError naming what is wrong."""
        title, at, rest = text.rpartition("@")
        address, slash, allowed = rest.partition("/")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text[:80]!r} is not a DICOM peer: give TITLE@HOST:PORT, or "
                             f"TITLE@HOST:PORT/ACTION+… to allow only some of "
                             f"{', '.join(ACTIONS)}")
        actions = {a.strip().lower() for a in allowed.split("+")} if slash else set(ACTIONS)
        if not actions <= set(ACTIONS):
            raise ValueError(f"{text[:80]!r}: {', '.join(sorted(actions - set(ACTIONS)))} "
                             f"is not one of {', '.join(ACTIONS)}")
        return cls(ae_title(title), host.strip("[]"), int(port), frozenset(actions))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        allowed = "" if self.actions == set(ACTIONS) else \
            "/" + "+".join(a for a in ACTIONS if a in self.actions)
        return f"{self.title}@{host}:{self.port}{allowed}"


def store_title(text: str) -> tuple[str, str]:
    """TITLE=STORE (`--dimse-store`): an AE title of the gateway and the name of the store
    it reaches, checked as an AE title and split; ValueError otherwise."""
    title, equals, store = text.partition("=")
    if not equals or not store.strip():
        raise ValueError(f"{text[:80]!r}: give TITLE=projects/P/locations/L/datasets/D/"
                         "dicomStores/S")
    return ae_title(title), store.strip()
