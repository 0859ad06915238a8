"""Who may associate with the gateway and what each may do (PS3.8 7.1.1.4, 9.3.4): the
called AE title must be the gateway's or one of its stores' (`--dimse-store`); once peers are
configured, the calling AE title must be one of them, calling from its host, and a request
its actions do not allow is refused (0124H, PS3.7 C.4.4)."""

import ipaddress
import logging
import socket
import ssl
from typing import Any

from pynetdicom.association import Association
from pynetdicom.events import Event

from pacs.dimse.auditing import DimseAudit
from pacs.dimse.bridge import Bridge
from pacs.dimse.peers import Peer
from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.stores import StoreContext

log = logging.getLogger("pacs")
NOT_AUTHORIZED = 0x0124  # PS3.7 C.4.4: Refused: Not Authorized
# A-ASSOCIATE-RJ (PS3.8 9.3.4): rejected permanent by the service user, and why
CALLING_NOT_RECOGNIZED, CALLED_NOT_RECOGNIZED = (0x01, 0x01, 0x03), (0x01, 0x01, 0x07)


class Admission:
    """The gateway's AE titles (each the name of a store) and its known peers."""

    def __init__(self, archive: Archive, bridge: Bridge, titles: dict[str, str],
                 peers: dict[str, Peer], open_to_all: bool, audit: DimseAudit,
                 outgoing_tls: ssl.SSLContext | None = None) -> None:
        self._archive, self._bridge, self._audit = archive, bridge, audit
        self._outgoing_tls = outgoing_tls  # for the peers reached over TLS
        self._titles = titles  # called AE title → store name
        self.peers = peers  # by AE title
        self._open = open_to_all  # any calling AE title, from anywhere

    def requested(self, event: Event) -> None:
        """EVT_REQUESTED: reject an association the configuration does not allow, saying
        why in the log and in the A-ASSOCIATE-RJ's diagnostic."""
        requestor = event.assoc.requestor
        calling, called = _titles(event.assoc)
        reason, diagnostic = None, CALLING_NOT_RECOGNIZED
        peer = self.peers.get(calling)
        try:
            self.store(event.assoc)
        except NotFound:
            reason, diagnostic = f"called AE title {called!r} is not one of the gateway's " \
                f"({', '.join(self._titles)})", CALLED_NOT_RECOGNIZED
        if reason is None and not self._open:
            if peer is None:
                reason = f"calling AE title {calling!r} is not a known peer (--dimse-peer)"
            elif _address(requestor.address) not in _addresses(peer.host):
                reason = f"{calling} calls from {requestor.address}, not from its host " \
                    f"{peer.host}"
        if reason is not None:
            log.warning("DICOM association from %s@%s to %s rejected: %s", calling,
                        requestor.address, called, reason)
            self._audit.record(event.assoc, "A-ASSOCIATE", "", called, diagnostic[2],
                               outcome="denied", reason=reason)
            event.assoc.acse.send_reject(*diagnostic)
            event.assoc.kill()

    def reach(self, peer: Peer) -> dict[str, Any]:
        """pynetdicom's `associate` arguments that reach `peer`: its AE title, and TLS when
        it is reached so."""
        if peer.tls and self._outgoing_tls is not None:
            return {"ae_title": peer.title, "tls_args": (self._outgoing_tls, peer.host)}
        return {"ae_title": peer.title}

    @staticmethod
    def called(association: Association) -> str:
        """The AE title of ours the association called."""
        return _titles(association)[1]

    def store_name(self, association: Association) -> str:
        """The name of the store the association's called AE title reaches ("" if none)."""
        return self._titles.get(self.called(association), "")

    def store(self, association: Association) -> StoreContext:
        """The store the association's called AE title reaches; NotFound if none."""
        name = self.store_name(association)
        if not name:
            raise NotFound(f"no store has AE title {self.called(association)}")
        return self._bridge.run(self._archive.stores.get(name))

    def allows(self, event: Event, action: str) -> bool:
        """Whether the calling peer may do `action` (one of peers.ACTIONS); a refusal is
        logged."""
        calling = str(event.assoc.requestor.ae_title).strip()
        peer = self.peers.get(calling)
        if self._open or peer is not None and action in peer.actions:
            return True
        log.warning("DICOM %s from %s@%s refused: that peer may only %s", action, calling,
                    event.assoc.requestor.address,
                    ", ".join(sorted(peer.actions)) if peer else "echo")
        return False


def _titles(association: Association) -> tuple[str, str]:
    """The calling and called AE titles of an association's request."""
    request = association.requestor.primitive
    assert request is not None  # EVT_REQUESTED comes after the A-ASSOCIATE-RQ
    return str(request.calling_ae_title).strip(), str(request.called_ae_title).strip()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as the socket gave it, IPv4-mapped IPv6 ones as IPv4."""
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _addresses(host: str) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The addresses `host` resolves to now (a modality's name may move with DHCP); none if
    it does not resolve."""
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        log.warning("DICOM peer host %s does not resolve", host)
        return frozenset()
    return frozenset(_address(str(info[4][0])) for info in found) - {None}
