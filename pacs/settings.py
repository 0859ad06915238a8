"""Frozen settings, built once at startup and passed explicitly; every limit lives here."""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pacs.names import DEFAULT_STORE
from storage.backends import Placement

SETTINGS_VARIABLE = "PACS_SETTINGS"
HELP = "help"  # the metadata key of a tunable field's description
_PATHS = ("data_dir", "gcs_dir", "audit_log", "viewer_dir", "worklist_dir", "dimse_tls_cert",
          "dimse_tls_key", "dimse_tls_ca")  # fields holding a Path


def tunable(default: Any, description: str) -> Any:
    """A limit or tuning field an operator may set (pacs/config.py makes it an option)."""
    return field(default=default, metadata={HELP: description})


@dataclass(frozen=True)
class Settings:
    """Server configuration."""

    data_dir: Path = Path("pacs-data")
    index_url: str = ""  # postgresql://… ("": SQLite in data_dir); storage/backends.py
    blobs_url: str = ""  # s3://bucket/prefix ("": files in data_dir)
    stores: tuple[str, ...] = ()  # further stores: projects/P/locations/L/datasets/D/dicomStores/S
    default_store: str = str(DEFAULT_STORE)
    cors_origins: tuple[str, ...] = ("*",)  # "*" only while authentication is off
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")  # proxies whose X-Forwarded-*
    public_url: str = ""  # the base URL clients reach the server at, if pinned
    # limits and tuning: each is also a `pacs serve` option (pacs/config.py)
    max_part_header_bytes: int = tunable(16 * 1024, "header bytes of one multipart part")
    max_query_bytes: int = tunable(32 * 1024, "bytes of a request's query string (more: 414)")
    max_header_bytes: int = tunable(64 * 1024,
                                    "bytes of a request's header fields together (more: 431)")
    max_header_count: int = tunable(100, "header fields of a request (more: 431)")
    max_instance_bytes: int = tunable(4 * 1024**3,
                                      "bytes of one stored instance (Google: 4 GB per tag)")
    max_metadata_bytes: int = tunable(64 * 1024**2,
                                      "bytes of the JSON or XML metadata parts of one STOW")
    max_parts_per_request: int = tunable(
        10_000, "parts of one STOW read (the rest are refused with 0xA700)")
    stage_buffer_bytes: int = tunable(1024 * 1024,
                                      "request bytes buffered before a write to staging")
    stores_per_request: int = tunable(
        4, "complete parts of one STOW stored while the next arrive")
    read_chunk_bytes: int = tunable(
        0, "blob bytes per read when streaming a retrieve (0: the blob store's own, 1 MiB "
        "from files, 4 MiB per S3 GET)")
    max_frames_per_request: int = tunable(10_000, "frames one retrieve may name")
    max_transcode_bytes: int = tunable(
        1024**3, "bytes of an instance transcoded whole (Google: 1 GB)")
    max_animated_frames: int = tunable(
        256, "frames in one rendered GIF (each is held while encoding)")
    max_rendered_pixels: int = tunable(
        64 * 1024**2, "pixels of a rendered picture (a GIF's frames together) and of each frame "
        "decoded for it: 8192², or 256 frames of 512², fit; 10000 x 10000 does not")
    max_includefields: int = tunable(
        200, "attributes one search's includefield may name (all: one)")
    index_readers: int = tunable(4, "index connections reading at once, per worker")
    pixel_workers: int = tunable(
        0, "threads decoding, encoding and rendering at once (0: one per core)")
    pixel_cache_bytes: int = tunable(
        64 * 1024**2, "bytes of transcoded frames and rendered pictures kept, by the whole "
        "server (split among workers)")
    max_pixel_memory_bytes: int = tunable(
        512 * 1024**2, "estimated working memory of the pixel jobs running at once, by the "
        "whole server (split among workers); a job waits for room, one larger runs alone")
    gzip_cache_bytes: int = tunable(16 * 1024**2,
                                    "bytes of gzip-coded metadata kept, by the whole server")
    store_cache_seconds: float = tunable(
        2.0, "seconds before a store found by name is looked up again")
    cleanup_delay_seconds: float = tunable(60.0, "seconds from start to the first cleanup sweep")
    cleanup_interval_seconds: float = tunable(
        600.0, "seconds between sweeps for leftovers of interrupted work")
    staging_grace_seconds: float = tunable(
        6 * 3600.0, "seconds before an untouched staged blob is abandoned")
    orphan_grace_seconds: float = tunable(
        3600.0, "seconds before a blob no index row points at is removed")
    removal_grace_seconds: float = tunable(
        600.0, "seconds before a deleted instance's blob is removed")
    query_time_limit_seconds: float = tunable(30.0, "seconds one search may run")
    job_lease_seconds: float = tunable(
        30.0, "seconds a long-running operation's job stays with a server that has stopped "
        "saving its progress (it died) before another server takes it over")
    job_poll_seconds: float = tunable(
        2.0, "seconds between looks for jobs that another server started")
    readiness_seconds: float = tunable(
        2.0, "seconds between checks that the index and the blob store can be reached "
        "(/readyz answers the last at once)")
    oidc_jwks_refresh_seconds: float = tunable(
        30.0, "an unknown `kid` refetches the OIDC keys at most this often (seconds)")
    dimse_processes: int = tunable(
        0, "gateway processes sharing the DICOM port, each serving its associations in "
        "threads (0: two per worker, at most 8: the kernel spreads associations by address, "
        "unevenly)")
    dimse_max_associations: int = tunable(
        16, "DICOM associations each gateway process serves at once")
    dimse_timeout_seconds: float = tunable(
        30.0, "seconds the DICOM gateway waits on a silent peer (ACSE, DIMSE and network)")
    dimse_max_pdu_bytes: int = tunable(
        1024**2, "largest PDU a DICOM peer may send the gateway (0: no limit)")
    server_workers: int = 1  # worker processes serving (each holds its share of the caches)
    gcs_dir: Path | None = None  # what gs://BUCKET/PATH maps to (None: <data_dir>/gcs)
    # bearer token → identity (member syntax); never shown
    auth_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    admins: tuple[str, ...] = ()  # identities that hold every permission
    audit_log: Path | None = None  # JSON lines of who did what (None: no audit log)
    viewer_dir: Path | None = None  # an OHIF v3 build served at /viewer (None: no viewer)
    oidc_issuer: str = ""  # OIDC: the `iss` a JWT must carry ("" : OIDC off)
    oidc_audience: str = ""  # the `aud` it must carry
    oidc_jwks: str = ""  # the issuer's keys: a JWKS file or https URL
    oidc_identity_claim: str = "email"  # identity: user:<this claim>
    oidc_roles_claim: str = ""  # dotted path to the token's roles, e.g. realm_access.roles
    oidc_role_map: tuple[tuple[str, str, str], ...] = ()  # (token role, resource, Google role)
    dimse_port: int | None = None  # the DICOM gateway's port (None: no gateway)
    ae_title: str = "PACS"  # the gateway's AE title, which reaches the default store
    dimse_stores: tuple[str, ...] = ()  # the gateway's other AE titles, as TITLE=STORE
    dimse_peers: tuple[str, ...] = ()  # known DICOM peers, as TITLE@HOST:PORT[/ACTION+…]
    worklist_dir: Path | None = None  # DICOM JSON worklist items (None: no worklist)
    dimse_tls_cert: Path | None = None  # the gateway's TLS certificate (None: plain TCP)
    dimse_tls_key: Path | None = field(default=None, repr=False)  # and its private key
    dimse_tls_ca: Path | None = None  # peers must present a certificate it signed
    dimse_tls_peers: tuple[str, ...] = ()  # AE titles of the peers reached over TLS

    def to_env(self) -> str:
        """JSON for the `PACS_SETTINGS` variable that worker processes read."""
        values = asdict(self)
        for name in _PATHS:
            values[name] = None if values[name] is None else str(values[name])
        return json.dumps(values)

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings a `pacs serve` parent put in `PACS_SETTINGS` (defaults if unset)."""
        values = json.loads(os.environ.get(SETTINGS_VARIABLE, "{}"))
        for f in fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(tuple(v) if isinstance(v, list) else v
                                       for v in values[f.name])
        for name in _PATHS:
            if values.get(name) is not None:
                values[name] = Path(values[name])
        return cls(**values)

    @property
    def placement(self) -> Placement:
        """Where the index and blobs are kept, and how the index is read."""
        return Placement(self.data_dir, self.index_url, self.blobs_url, self.index_readers,
                         self.query_time_limit_seconds)

    @property
    def authentication(self) -> bool:
        """Whether requests must carry a credential (some way to authenticate is set)."""
        return bool(self.auth_tokens or self.oidc_issuer)

    @property
    def gcs_root(self) -> Path:
        """The directory `gs://` URIs of import and export map to: gs://B/P is <root>/B/P."""
        return self.gcs_dir or self.data_dir / "gcs"

