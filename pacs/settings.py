"""Frozen settings, built once at startup and passed explicitly; every limit lives here."""

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STORE = "projects/local/locations/local/datasets/default/dicomStores/default"
PROFILES = ("full", "google")


@dataclass(frozen=True)
class Settings:
    """Server configuration."""

    data_dir: Path = Path("pacs-data")
    stores: tuple[str, ...] = ()  # further stores: projects/P/locations/L/datasets/D/dicomStores/S
    default_store: str = DEFAULT_STORE
    cors_origins: tuple[str, ...] = ("*",)
    max_part_header_bytes: int = 16 * 1024  # headers of one multipart part
    max_instance_bytes: int = 4 * 1024**3  # one stored object (Google: 4 GB per tag)
    stage_buffer_bytes: int = 1024 * 1024  # request bytes buffered before a write to staging
    read_chunk_bytes: int = 1024 * 1024  # blob bytes per read when streaming a retrieve
    qido_default_limit: int = 1000  # results per page when the query gives no limit
    qido_max_limit: int = 10_000
    max_frames_per_request: int = 10_000
    index_readers: int = 4
    ingest_processes: int = field(default_factory=lambda: os.cpu_count() or 1)  # 0: threads
    query_time_limit_seconds: float = 30.0

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir
