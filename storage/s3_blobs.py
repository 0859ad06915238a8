"""Blobs in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW), through obstore.

Received bytes are spooled to a file in a local staging directory, because the service reads
a staged blob back (to parse its header) before committing it. `commit` uploads the file to
`prefix/NAME`, NAME being the spool file's fresh UUID, never reused: one PUT up to
PART_BYTES, a multipart upload above (obstore streams the file in parts, a few at a time, so
memory stays bounded). The blob is durable once the PUT or CompleteMultipartUpload has
returned. A blob's age is its LastModified.

An upload interrupted by a crash leaves an incomplete multipart upload in the bucket, a
staging leftover (aged from its start) as much as the spool file it came from. obstore cannot
list or abort those, so the two requests it lacks (ListMultipartUploads and
AbortMultipartUpload) are signed here, with AWS Signature Version 4.
"""

import hashlib
import hmac
import ipaddress
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from storage.filesystem_blobs import FileStagedBlob, Receiving, blob_age, is_blob_name
from storage.protocols import StagedBlob

if TYPE_CHECKING:
    from obstore.store import S3Credential

PART_BYTES = 8 * 1024 * 1024  # the smallest part; a bigger blob goes up in parts this size
MAX_PARTS = 10_000  # S3's limit on a multipart upload's parts
UPLOAD_CONCURRENCY = 4  # parts in flight per upload: at most this many parts held in memory
CHECK_SECONDS = 3  # `check` answers within about this (readiness)
REQUEST_SECONDS = 60  # one request, a part upload included
RETRIES, RETRY_SECONDS = 3, 30  # a failed request is tried again this often, this long
EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass(frozen=True)
class S3Location:
    """A bucket, a key prefix in it and how to reach it: from `s3://bucket/prefix` and the
    environment as the AWS tools read it (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
    AWS_DEFAULT_REGION). Plain http only to a loopback endpoint, or with AWS_ALLOW_HTTP=true."""

    bucket: str
    prefix: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str
    session_token: str

    @classmethod
    def parse(cls, url: str, env: Mapping[str, str]) -> "S3Location":
        """The location `url` names; ValueError for a URL or environment that names none."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                    or f"https://s3.{region}.amazonaws.com").rstrip("/")
        where = urllib.parse.urlsplit(endpoint)
        if where.scheme not in ("http", "https") or not where.hostname:
            raise ValueError(f"the S3 endpoint {endpoint!r} is not an http(s) URL")
        if where.scheme == "http" and not _loopback(where.hostname) \
                and env.get("AWS_ALLOW_HTTP", "").lower() != "true":
            raise ValueError(f"the S3 endpoint {endpoint} is plain http and not on loopback: "
                             "use https (or set AWS_ALLOW_HTTP=true)")
        access_key, secret_key = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise ValueError(f"{url}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
        return cls(parts.netloc, parts.path.strip("/"), endpoint, region, access_key,
                   secret_key, env.get("AWS_SESSION_TOKEN", ""))

    def store(self, request_seconds: float, retries: int, retry_seconds: float) -> S3Store:
        """An obstore client of the location, with these timeouts and retries."""
        return S3Store(
            self.bucket, prefix=self.prefix or None,
            config={"endpoint": self.endpoint, "aws_endpoint_url_s3": self.endpoint,
                    "region": self.region},
            credential_provider=self._credential,
            client_options={"allow_http": self.endpoint.startswith("http:"),
                            "connect_timeout": timedelta(seconds=min(request_seconds, 5)),
                            "timeout": timedelta(seconds=request_seconds)},
            retry_config={"max_retries": retries,
                          "retry_timeout": timedelta(seconds=retry_seconds)})

    def _credential(self) -> "S3Credential":
        """These keys, never the process environment's (obstore reads it otherwise)."""
        return {"access_key_id": self.access_key, "secret_access_key": self.secret_key,
                "token": self.session_token or None, "expires_at": None}


class S3BlobStore:
    """BlobStore on an S3 bucket, staging in a local directory."""

    # one ranged GET each: 4 MiB streams a blob 2-3x faster than 1 MiB from SeaweedFS on
    # loopback, 8 MiB little more (benchmarks/s3_blobs.py), and each is held in memory
    read_size = 4 * 1024**2

    def __init__(self, location: S3Location, staging: Path) -> None:
        self._location = location
        self._staging = staging
        self._staging.mkdir(parents=True, exist_ok=True)
        self._receiving = Receiving()
        self._store = location.store(REQUEST_SECONDS, RETRIES, RETRY_SECONDS)
        self._checker = location.store(CHECK_SECONDS, 0, 0)

    @classmethod
    def from_url(cls, url: str, staging: Path,
                 env: Mapping[str, str] | None = None) -> "S3BlobStore":
        """The store at `s3://bucket/prefix`, configured from `env` (the process's
        environment if None), staging in `staging`."""
        return cls(S3Location.parse(url, os.environ if env is None else env), staging)

    def __str__(self) -> str:
        where = self._location
        return f"s3://{where.bucket}/{where.prefix} at {where.endpoint}"

    def stage(self) -> FileStagedBlob:
        return FileStagedBlob(self._staging, self._receiving)

    def commit(self, staged: StagedBlob) -> str:
        if not isinstance(staged, FileStagedBlob) or staged.path.parent != self._staging:
            raise TypeError("an S3 blob store commits only what it staged")
        staged.close()
        name, size = staged.path.stem, staged.size
        part = max(PART_BYTES, math.ceil(size / MAX_PARTS / 2**20) * 2**20)
        with self._failing(f"cannot upload blob {name}"):
            obstore.put(self._store, name, staged.path, use_multipart=size > part,
                        chunk_size=part, max_concurrency=UPLOAD_CONCURRENCY)
        staged.discard()
        return name

    def read(self, name: str, offset: int, length: int) -> bytes:
        key = _valid(name)
        if length <= 0:
            self.size(name)  # nothing asked: b"", if there is such a blob
            return b""
        try:
            return bytes(obstore.get_range(self._store, key, start=offset, length=length))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self}: no blob {name}") from exc
        except BaseError as exc:  # S3 refuses a range that starts past the end (416)
            if offset < self.size(name):
                raise OSError(f"{self}: cannot read blob {name}: {_reason(exc)}") from exc
            return b""

    def size(self, name: str) -> int:
        key = _valid(name)
        with self._failing(f"cannot find the size of blob {name}"):
            return int(obstore.head(self._store, key)["size"])

    def delete(self, name: str) -> None:
        key = _valid(name)
        with self._failing(f"cannot delete blob {name}"):
            obstore.delete(self._store, key)

    def names(self, older_than: float) -> Iterator[str]:
        """Keys under the prefix that are not blobs (a stray folder marker) are skipped."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        with self._failing("cannot list blobs"):
            for batch in obstore.list(self._store):
                for meta in batch:
                    if is_blob_name(meta["path"]) and meta["last_modified"] < cutoff:
                        yield meta["path"]

    def check(self) -> None:
        if not self._staging.is_dir():
            raise FileNotFoundError(f"the staging directory {self._staging} is missing")
        try:
            next(iter(obstore.list(self._checker, prefix="check", chunk_size=1)), None)
        except (BaseError, OSError) as exc:
            raise OSError(f"{self} cannot be reached: {_reason(exc)}") from exc

    def count_staging(self, older_than: float) -> int:
        files, uploads = self._leftovers(older_than)
        return len({path.stem for path in files} | {key for key, _ in uploads})

    def discard_staging(self, older_than: float) -> int:
        files, uploads = self._leftovers(older_than)
        for path in files:
            path.unlink(missing_ok=True)
        for key, upload in uploads:
            with suppress(FileNotFoundError):  # completed or aborted meanwhile
                self._request("DELETE", key, {"uploadId": upload})
        return len({path.stem for path in files} | {key for key, _ in uploads})

    def _leftovers(self, older_than: float) -> tuple[list[Path], list[tuple[str, str]]]:
        """Spool files and multipart uploads untouched for `older_than` seconds and not this
        process's; an upload by its key's last part and its id."""
        files = [path for path in self._staging.iterdir()
                 if path not in self._receiving and blob_age(path) > older_than]
        uploads = [(key, upload) for key, upload, started in self._uploads()
                   if self._staging / f"{key}.part" not in self._receiving
                   and time.time() - started > older_than]
        return files, uploads

    def _uploads(self) -> Iterator[tuple[str, str, float]]:
        """Every multipart upload under the prefix: its key's last part, id and start time."""
        prefix = self._location.prefix + "/" if self._location.prefix else ""
        query = {"uploads": "", "prefix": prefix}
        while True:
            result = ElementTree.fromstring(self._request("GET", "", query))
            for upload in result.iterfind("{*}Upload"):
                key = upload.findtext("{*}Key", "")
                started = datetime.fromisoformat(upload.findtext("{*}Initiated", ""))
                yield key[len(prefix):], upload.findtext("{*}UploadId", ""), \
                    started.timestamp()
            if result.findtext("{*}IsTruncated") != "true":
                return
            query = {**query, "key-marker": result.findtext("{*}NextKeyMarker", ""),
                     "upload-id-marker": result.findtext("{*}NextUploadIdMarker", "")}

    def _request(self, method: str, name: str, query: dict[str, str]) -> bytes:
        """The response body of an S3 request that obstore does not make, on the bucket or
        on blob `name`; FileNotFoundError if S3 answers 404, OSError if anything else fails."""
        where = self._location
        base = urllib.parse.urlsplit(where.endpoint)
        key = "/".join(part for part in (where.prefix, name) if part)
        path = urllib.parse.quote(f"{base.path}/{where.bucket}" + (f"/{key}" if name else ""),
                                  safe="/~")
        query_string = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        headers = _signed(where, method, base.netloc, path, query_string)
        request = urllib.request.Request(f"{base.scheme}://{base.netloc}{path}?{query_string}",
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                body: bytes = response.read()
                return body
        except urllib.error.URLError as exc:  # an HTTPError too, with S3's answer
            answer = exc.read().decode(errors="replace") \
                if isinstance(exc, urllib.error.HTTPError) else ""
            failed = FileNotFoundError if getattr(exc, "code", None) == 404 else OSError
            raise failed(f"{self}: {method} {path}?{query_string}: "
                         f"{_reason(f'{exc}: {answer}')}") from exc

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """obstore's errors as the Protocol's: FileNotFoundError for a missing blob, and
        OSError naming the store for anything else the bucket did not do."""
        try:
            yield
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self}: {what}: no such blob") from exc
        except BaseError as exc:
            raise OSError(f"{self}: {what}: {_reason(exc)}") from exc


def _valid(name: str) -> str:
    """`name`, if it can be a blob's name; ValueError if not."""
    if not is_blob_name(name):
        raise ValueError(f"not a blob name: {name!r}")
    return name


def _signed(where: S3Location, method: str, host: str, path: str, query: str
            ) -> dict[str, str]:
    """The headers of a request without a body, signed with AWS Signature Version 4."""
    now = datetime.now(UTC)
    day, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if where.session_token:
        headers["x-amz-security-token"] = where.session_token
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, query, *(f"{k}:{headers[k]}" for k in sorted(headers)),
                           "", names, EMPTY_SHA256])
    scope = f"{day}/{where.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{where.secret_key}".encode()
    for part in (day, where.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {**headers, "authorization": f"AWS4-HMAC-SHA256 Credential={where.access_key}/"
            f"{scope}, SignedHeaders={names}, Signature={signature}"}


def _quote(text: str) -> str:
    """URI-encoded as Signature Version 4 wants: all but the unreserved characters."""
    return urllib.parse.quote(text, safe="~")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(error: BaseException | str) -> str:
    """The first line of an error, without the XML body S3 answered, and its cause: S3's
    error code, or the system's or the HTTP client's reason found in obstore's details."""
    text = str(error).strip()
    first = text.split("\n", 1)[0].split(": <?xml", 1)[0] or type(error).__name__
    for cause in (r"<Code>(\w+)</Code>", r'message: "([^"]+)"', r"HttpError \{\s*kind: (\w+)"):
        if found := re.search(cause, text):
            return f"{first} ({found[1]})"
    return first
