"""create_app(settings): the Starlette application and its lifespan."""

import contextlib
import logging
import os
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from pacs.archive import Archive
from pacs.errors import (
    DicomWebError,
    dicomweb_error_handler,
    error_response,
    http_error_handler,
    internal_error_handler,
)
from pacs.pixels.description import PixelError
from pacs.pixels.engine import PixelEngine
from pacs.pydicom_config import configure_pydicom
from pacs.routes import ROUTES
from pacs.settings import Settings
from storage.filesystem_blobs import FilesystemBlobStore
from storage.index.connection import QueryTimeout
from storage.index.sqlite_index import SqliteIndex

log = logging.getLogger("pacs")


async def _pixel_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _query_timeout_handler(request: Request, exc: Exception) -> Response:
    return error_response(503, f"the query took too long and was stopped: {exc}")


async def open_archive(settings: Settings) -> Archive:
    """Open the index and blob store, apply migrations and create the configured stores; with
    `sweep_on_start`, also remove staging leftovers and blobs no index row reaches (left by an
    interrupted store or delete). Only a process that writes alone may sweep."""
    index = SqliteIndex(settings.index_path, readers=settings.index_readers,
                        read_time_limit=settings.query_time_limit_seconds)
    await index.migrate()
    blobs = FilesystemBlobStore(settings.blob_dir)
    for name in (settings.default_store, *settings.stores):
        await index.ensure_store(name, "full")
    if settings.sweep_on_start:
        await _sweep(index, blobs)
    workers = settings.pixel_workers or os.cpu_count() or 1
    return Archive(settings, index, blobs,
                   PixelEngine(blobs, workers, settings.pixel_cache_bytes))


async def _sweep(index: SqliteIndex, blobs: FilesystemBlobStore) -> None:
    await anyio.to_thread.run_sync(blobs.discard_staging)
    referenced = await index.blob_names()
    orphans = [n for n in await anyio.to_thread.run_sync(lambda: list(blobs.names()))
               if n not in referenced]
    for name in orphans:
        await anyio.to_thread.run_sync(blobs.delete, name)
    if orphans:
        log.warning("removed %d blobs that no index row referenced", len(orphans))


def app_from_env() -> Starlette:
    """The application of a worker process (`uvicorn --factory`), from `PACS_SETTINGS`."""
    return create_app(Settings.from_env())


def create_app(settings: Settings) -> Starlette:
    """The ASGI application serving `settings`."""
    configure_pydicom()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        archive = await open_archive(settings)
        app.state.archive = archive
        try:
            yield
        finally:
            await archive.index.close()

    middleware = [Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                             allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                             allow_headers=["*"], expose_headers=["Warning", "Content-Location"])]
    return Starlette(
        routes=ROUTES, middleware=middleware, lifespan=lifespan,
        exception_handlers={DicomWebError: dicomweb_error_handler,
                            HTTPException: http_error_handler,
                            QueryTimeout: _query_timeout_handler,
                            PixelError: _pixel_error_handler,
                            Exception: internal_error_handler},
    )
