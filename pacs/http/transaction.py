"""A PS3.18 transaction as the route table serves it: its name, its handler, and the
representations it answers (and accepts), so that the Retrieve Capabilities description is
generated from the same tables negotiation uses."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from pacs.http.media_types import Offer

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Transaction:
    """`permission` is the DICOM store permission it needs (spec 6.2: dicomWebRead, …);
    `answers` are the representations negotiation offers; `accepts` the request bodies."""

    name: str
    permission: str
    handler: Handler
    answers: tuple[Offer, ...] = ()
    accepts: tuple[str, ...] = ()
