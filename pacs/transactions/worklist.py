"""The Modality Worklist over HTTP, for whatever schedules the procedures (a RIS bridge, an
order-entry script): `/worklist` lists and adds items, `/worklist/{item}` reads, writes and
removes one; each item a DICOM JSON data set, answered to the modalities' worklist C-FIND
by the DICOM gateway (pacs/service/worklist_items.py). Not part of DICOMweb nor of the
Cloud Healthcare API: UPS-RS (PS3.18 11) is the standard's richer way."""

from typing import Any

import anyio
from starlette.requests import Request

from pacs.http.addressing import archive_of
from pacs.service import worklist_items
from pacs.transactions.management import json_object


async def list_items(request: Request) -> dict[str, Any]:
    folder = worklist_items.folder_of(archive_of(request).settings.worklist_dir)
    return {"items": await anyio.to_thread.run_sync(worklist_items.list_items, folder)}


async def create_item(request: Request) -> dict[str, Any]:
    return await _put(request, None)


async def get_item(request: Request) -> dict[str, Any]:
    folder = worklist_items.folder_of(archive_of(request).settings.worklist_dir)
    return await anyio.to_thread.run_sync(worklist_items.get_item, folder,
                                          request.path_params["item"])


async def put_item(request: Request) -> dict[str, Any]:
    return await _put(request, request.path_params["item"])


async def delete_item(request: Request) -> dict[str, Any]:
    folder = worklist_items.folder_of(archive_of(request).settings.worklist_dir)
    await anyio.to_thread.run_sync(worklist_items.delete_item, folder,
                                   request.path_params["item"])
    return {}


async def _put(request: Request, item_id: str | None) -> dict[str, Any]:
    folder = worklist_items.folder_of(archive_of(request).settings.worklist_dir)
    item = await json_object(request)
    return await anyio.to_thread.run_sync(worklist_items.put_item, folder, item_id, item)
