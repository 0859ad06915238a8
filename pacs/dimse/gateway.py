"""The DICOM gateway's process (`pacs serve --dimse-port`): a pynetdicom AE on its own port
beside the HTTP server, accepting Verification, every storage SOP class in every transfer
syntax the archive knows, and the Patient and Study Root query models (PS3.4 Annexes A, B
and C), through the same service layer as STOW and QIDO. pynetdicom serves each association
in a thread; the archive is opened once, on an event loop of the gateway's own (`Bridge`)."""

import contextlib
import logging
import logging.config
import multiprocessing
import os
import shutil
import signal
import socket
import socketserver
import tempfile
import threading
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from pacs.dicom.transfer_syntaxes import TRANSFER_SYNTAXES
from pacs.dimse.admission import Admission
from pacs.dimse.auditing import DimseAudit
from pacs.dimse.bridge import Bridge
from pacs.dimse.peers import Peer, store_title
from pacs.dimse.services import Services
from pacs.dimse.tls import client_context, server_context
from pacs.service.archive import open_archive
from pacs.service.audit import AuditLog
from pacs.settings import SETTINGS_VARIABLE, Settings

log = logging.getLogger("pacs")
PARENT_POLL_SECONDS = 0.5
QUERY_MODELS = (PatientRootQueryRetrieveInformationModelFind,
                StudyRootQueryRetrieveInformationModelFind,
                PatientRootQueryRetrieveInformationModelGet,
                StudyRootQueryRetrieveInformationModelGet,
                PatientRootQueryRetrieveInformationModelMove,
                StudyRootQueryRetrieveInformationModelMove)
INCOMING = "dimse-incoming"  # under the data directory: data sets as they arrive
MAX_DEFAULT_PROCESSES = 8


def processes(settings: Settings, workers: int) -> int:
    """How many gateway processes to run: `dimse_processes`, else two per worker (the
    kernel spreads associations by address hash, not load, so one per core would often
    leave a core idle), at most MAX_DEFAULT_PROCESSES (each holds about 75 MB)."""
    if settings.dimse_processes > 0:
        return settings.dimse_processes
    return min(2 * max(workers, 1), MAX_DEFAULT_PROCESSES)


def start(settings: Settings, host: str, open_to_all: bool, logs: dict[str, Any],
          count: int) -> list[BaseProcess]:
    """`count` gateway processes, started, each accepting associations on the same port
    (SO_REUSEPORT: the kernel spreads them) and holding its share of the caches;
    `open_to_all` lets any calling AE title associate, else only the known peers'."""
    shutil.rmtree(settings.data_dir / INCOMING, ignore_errors=True)  # an earlier gateway's
    shared = replace(settings, server_workers=count).to_env()
    started: list[BaseProcess] = []
    for number in range(count):
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(shared, host, open_to_all, logs, number),
            name=f"pacs-dimse-{number}", daemon=True)
        process.start()
        started.append(process)
    return started


def stop(processes: list[BaseProcess]) -> None:
    """Stop the gateway: associations under way are aborted, the archive closed."""
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: _serve shuts its server down
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()


class SharedPortServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, its port shared with the gateway's other processes."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def shutdown(self) -> None:
        """Stop serving and close the port (pynetdicom's own also forgets the server in
        the AE's list of those `start_server` made, which this one is not in)."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


def application_entity(settings: Settings, open_to_all: bool) -> AE:
    """The gateway's AE: its title, limits, timeouts, who may call, and what it accepts."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.dimse_max_associations
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.dimse_timeout_seconds
    ae.maximum_pdu_size = settings.dimse_max_pdu_bytes
    ae.require_called_aet = False  # pacs.dimse.admission checks both titles, and the host
    ae.require_calling_aet = []
    syntaxes = list(TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:  # the peer stores, or receives a C-GET's
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, syntaxes, scu_role=True,
                                 scp_role=True)
    for model in QUERY_MODELS:
        ae.add_supported_context(model, syntaxes)
    if settings.worklist_dir is not None:
        ae.add_supported_context(ModalityWorklistInformationFind, syntaxes)
    ae.add_supported_context(Verification, syntaxes)
    ae.add_supported_context(StorageCommitmentPushModel, syntaxes)
    return ae


def _serve(settings_json: str, host: str, open_to_all: bool, logs: dict[str, Any],
           number: int) -> None:
    """Gateway process `number`: serve until SIGTERM or SIGINT."""
    logging.config.dictConfig(logs)
    os.environ[SETTINGS_VARIABLE] = settings_json
    settings = Settings.from_env()
    _config.STORE_RECV_CHUNKED_DATASET = True  # a received dataset goes to a file, not memory
    incoming = settings.data_dir / INCOMING / str(number)
    incoming.mkdir(parents=True)
    tempfile.tempdir = str(incoming)  # where pynetdicom writes them
    bridge = Bridge()
    archive = bridge.run(open_archive(settings))
    titles = {settings.ae_title: settings.default_store,
              **dict(map(store_title, settings.dimse_stores))}
    peers = {peer.title: replace(peer, tls=peer.title in settings.dimse_tls_peers)
             for peer in map(Peer.parse, settings.dimse_peers)}
    audit = DimseAudit(AuditLog(settings.audit_log) if settings.audit_log else None)
    keys = (settings.dimse_tls_cert, settings.dimse_tls_key, settings.dimse_tls_ca)
    admission = Admission(archive, bridge, titles, peers, open_to_all, audit,
                          client_context(*keys) if settings.dimse_tls_peers else None)
    services = Services(archive, admission, bridge, audit)
    assert settings.dimse_port is not None
    tls = server_context(*keys)
    server = application_entity(settings, open_to_all).make_server(
        (host, settings.dimse_port), server_class=SharedPortServer, ssl_context=tls,
        evt_handlers=[
            (evt.EVT_REQUESTED, admission.requested), (evt.EVT_C_ECHO, services.echo),
            (evt.EVT_C_STORE, services.store), (evt.EVT_C_FIND, services.find),
            (evt.EVT_C_GET, services.get), (evt.EVT_C_MOVE, services.move),
            (evt.EVT_N_ACTION, services.commit),
            (evt.EVT_RELEASED, services.ended), (evt.EVT_ABORTED, services.ended),
            (evt.EVT_REJECTED, _rejected)])
    threading.Thread(target=server.serve_forever, name="pacs-dimse-server",
                     daemon=True).start()
    if number == 0:
        log.info("DICOM gateway %s at %s:%d%s (%s)", ", ".join(titles), host,
                 settings.dimse_port, "" if tls is None else " over TLS" if
                 settings.dimse_tls_ca is None else " over TLS, client certificates required",
                 "any calling AE title" if open_to_all else
                 "calling AE titles " + ", ".join(settings.dimse_peers))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    threading.Thread(target=_watch_parent, args=(stopping,), daemon=True).start()
    threading.Thread(target=_sweep_incoming, args=(incoming, settings, stopping),
                     daemon=True).start()
    stopping.wait()
    for association in server.active_associations:  # or shutdown waits on idle peers
        association.abort()
    server.shutdown()
    audit.close()
    bridge.run(archive.close())
    bridge.close()


def _watch_parent(stopping: threading.Event) -> None:
    """Stop when `pacs serve` is gone, however it went: uvicorn ends its process with the
    signal that stopped it, before anything could stop the gateway, and a SIGKILL leaves
    no chance at all."""
    parent = os.getppid()
    while not stopping.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent:
            stopping.set()


def _sweep_incoming(incoming: Path, settings: Settings, stopping: threading.Event) -> None:
    """Remove the files of data sets whose association was dropped mid-transfer (pynetdicom
    leaves them): a file still being received grows at least once per network timeout."""
    stale = 2 * settings.dimse_timeout_seconds
    while not stopping.wait(stale):
        for path in incoming.iterdir():
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > stale:
                    path.unlink()
                    log.warning("removed %s, a data set whose association ended before it "
                                "arrived whole", path.name)


def _rejected(event: Event) -> None:
    """pynetdicom's own rejections: too many associations at once."""
    requestor = event.assoc.requestor
    log.warning("DICOM association from %s@%s:%s rejected: the gateway serves %d at once "
                "(--dimse-max-associations)", requestor.ae_title, requestor.address,
                requestor.port, event.assoc.ae.maximum_associations)
