"""create_app(settings): the Starlette application and its lifespan."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.http.content_coding import gzip_cache
from pacs.http.errors import EXCEPTION_HANDLERS
from pacs.http.log_redaction import redact_access_log
from pacs.http.oidc import OidcVerifier
from pacs.http.request_limits import RequestLimits
from pacs.http.request_metrics import RequestMetrics
from pacs.http.trailing_slash import TrailingSlash
from pacs.http.viewer import Viewer
from pacs.malloc_arenas import limit_malloc_arenas
from pacs.pixels.codecs import missing_backends
from pacs.routes import ROUTES
from pacs.service.archive import open_archive
from pacs.service.audit import AuditLog
from pacs.service.cleanup import sweep_periodically
from pacs.service.health import Readiness
from pacs.service.job_runner import run_jobs
from pacs.settings import Settings

log = logging.getLogger("pacs")


def app_from_env() -> Starlette:
    """The application of a worker process (`uvicorn --factory`), from `PACS_SETTINGS`."""
    return create_app(Settings.from_env())


def create_app(settings: Settings) -> Starlette:
    """The ASGI application serving `settings`."""
    configure_pydicom()
    redact_access_log()
    limit_malloc_arenas()
    for syntax, missing in missing_backends().items():
        log.warning("transfer syntax %s cannot be decoded or encoded: %s not installed",
                    syntax, ", ".join(missing))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        archive = await open_archive(settings)
        app.state.archive = archive
        app.state.audit = AuditLog(settings.audit_log) if settings.audit_log else None
        app.state.gzip_cache = gzip_cache(settings)
        app.state.viewer = None if settings.viewer_dir is None else \
            Viewer(settings.viewer_dir, settings.public_url)
        if archive.read_only:
            log.warning("the data directory %s is on a read-only volume: serving reads, "
                        "refusing writes", settings.data_dir)
        app.state.readiness = readiness = Readiness()
        await readiness.check(archive)
        tasks = [asyncio.create_task(readiness.watch(archive, settings.readiness_seconds))]
        if not archive.read_only:
            tasks += [asyncio.create_task(sweep_periodically(archive)),
                      asyncio.create_task(run_jobs(archive))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await archive.close()
            if app.state.audit is not None:
                app.state.audit.close()

    # With authentication on, no origin is allowed by "*"; credentials (cookies) are never
    # allowed, so no origin is reflected with them: viewers send bearer tokens.
    origins = [o for o in settings.cors_origins if o != "*" or not settings.authentication]
    middleware = [Middleware(RequestMetrics), Middleware(TrailingSlash),
                  Middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                             allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                            "OPTIONS"],
                             allow_headers=["*"],
                             expose_headers=["Warning", "Content-Location", "Content-Range",
                                             "Content-Length", "WWW-Authenticate"]),
                  Middleware(RequestLimits, settings=settings)]
    app = Starlette(routes=ROUTES, middleware=middleware, lifespan=lifespan,
                    exception_handlers=dict(EXCEPTION_HANDLERS))
    app.router.redirect_slashes = False  # TrailingSlash serves those paths directly
    app.state.oidc = OidcVerifier(settings) if settings.oidc_issuer else None
    return app
