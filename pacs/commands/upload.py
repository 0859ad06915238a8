"""`pacs import --url`: each file sent by STOW-RS (PS3.18 10.5) as a single-part
application/dicom body to any DICOMweb server; one whose SOP Instance UID the server
already lists (QIDO-RS) is skipped without being sent."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from pacs.service.import_files import Result, Source, identify

TIMEOUT_SECONDS = 300.0


@asynccontextmanager
async def uploader(url: str, token: str | None
                   ) -> AsyncIterator[Callable[[Source], Awaitable[tuple[Result, str]]]]:
    """A function sending one source to the DICOMweb root `url` (with a bearer token)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers,
                                 timeout=TIMEOUT_SECONDS) as client:
        yield lambda source: _upload(client, source)


async def _upload(client: httpx.AsyncClient, source: Source) -> tuple[Result, str]:
    _, sop_uid = await anyio.to_thread.run_sync(identify, source)
    try:
        if sop_uid and await _listed(client, sop_uid):
            return Result.ALREADY_STORED, ""
        data = await anyio.to_thread.run_sync(_read, source)
        response = await client.post("/studies", content=data, headers={
            "Content-Type": "application/dicom", "Accept": "application/dicom+json"})
    except httpx.HTTPError as exc:
        return Result.FAILED, f"the server could not be reached: {exc}"
    if response.status_code == 200:
        return Result.STORED, ""
    return Result.FAILED, _why(response)


async def _listed(client: httpx.AsyncClient, sop_uid: str) -> bool:
    found = await client.get("/instances", params={"SOPInstanceUID": sop_uid},
                             headers={"Accept": "application/dicom+json"})
    try:
        return found.status_code == 200 and bool(found.json())
    except ValueError:
        return False


def _read(source: Source) -> bytes:
    with source.open() as file:
        return file.read()


def _why(response: httpx.Response) -> str:
    """The failure a STOW response gives: its FailureReason (and a detail if the server
    gives one), or the error body of another answer."""
    try:
        body: Any = response.json()
        item = body["00081198"]["Value"][0]
        reason = f"FailureReason 0x{item['00081197']['Value'][0]:04X}"
        detail = (item.get("00091097") or {}).get("Value", [""])[0]
        return f"HTTP {response.status_code}, {reason}" + (f": {detail}" if detail else "")
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:300]}"
