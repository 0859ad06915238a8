"""C-MOVE (PS3.4 C.4.2): the instances a Patient Root or Study Root identifier names, sent to
a known peer (`--dimse-peer TITLE@HOST:PORT`) over an association of their own, each as
stored when the peer accepts that transfer syntax, else transcoded as C-GET does."""

from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from pacs.dicom.transfer_syntaxes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    JPEG_2000_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    RLE_LOSSLESS,
)
from pacs.dimse.find import Run
from pacs.dimse.get import sent
from pacs.dimse.peers import Peer
from pacs.service.archive import Archive
from storage.rows import InstanceLocation

MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)
# what an instance a destination does not take as stored is offered in, in this order
TRANSCODED = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, RLE_LOSSLESS,
              JPEG_LS_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_LOSSLESS_SV1)


def move(archive: Archive, items: list[InstanceLocation] | Dataset, destination: Peer,
         reach: dict[str, Any], requestor: Association, run: Run,
         cancelled: Callable[[], bool]) -> Iterator[Any]:
    """What pynetdicom's C-MOVE handler yields for the instances `matched` found (or its
    failure): the destination's address with how to reach it (`reach`: AE title, TLS) and
    the contexts to propose, the number of sub-operations, then a (pending status, data
    set) pair per instance."""
    if isinstance(items, Dataset):
        yield destination.host, destination.port, reach
        yield 1  # (pynetdicom answers success at once to 0, unheard the failure that follows)
        yield items, None
        return
    yield destination.host, destination.port, {**reach, "contexts": contexts(items)}
    yield len(items)
    known: dict[str, list[str]] = {}

    def accepted() -> dict[str, list[str]]:
        """What the destination accepted, from the association pynetdicom made to it."""
        if not known:
            for association in requestor.ae.active_associations:
                if association.is_requestor and \
                        association.acceptor.ae_title == destination.title:
                    for context in association.accepted_contexts:
                        if context.abstract_syntax and context.transfer_syntax:
                            known.setdefault(context.abstract_syntax, []).append(
                                context.transfer_syntax[0])
        return known
    yield from sent(archive, items, accepted, run, cancelled)


def contexts(items: list[InstanceLocation]) -> list[PresentationContext]:
    """A context per SOP class and stored syntax, and one per SOP class offering what an
    instance can be transcoded to, native first, the lossless encodings after (the first
    MAX_CONTEXTS contexts)."""
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    for item in items:
        wanted[(item.sop_class_uid, (item.transfer_syntax_uid,))] = None
        wanted[(item.sop_class_uid, TRANSCODED)] = None
    return [build_context(sop_class, list(syntaxes))
            for sop_class, syntaxes in list(wanted)[:MAX_CONTEXTS]]
