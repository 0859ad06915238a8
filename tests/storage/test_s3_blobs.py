"""What the S3 blob store promises that only a real S3 server can show (tests/storage/
test_contracts.py holds it to the BlobStore contract): multipart uploads, readiness against
a wrong endpoint, key or bucket, and abandoned multipart uploads. Against SeaweedFS."""

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import obstore
import pytest

from storage.s3_blobs import CHECK_SECONDS, PART_BYTES, S3BlobStore, S3Location
from tests.storage import s3_server
from tests.storage.s3_server import BUCKET, S3Server

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture
def server() -> S3Server:
    return s3_server.shared()


@pytest.fixture
def blobs(server: S3Server, tmp_path: Path) -> S3BlobStore:
    return server.blob_store(tmp_path.name, tmp_path / "staging")


def test_a_blob_of_several_parts_round_trips_and_reads_across_part_boundaries(
        server: S3Server, blobs: S3BlobStore, tmp_path: Path) -> None:
    """Past PART_BYTES a blob goes up as a multipart upload (its ETag counts the parts) and
    comes back byte for byte, whole or by ranges astride part boundaries."""
    data = os.urandom(2 * PART_BYTES + 12_345)
    staged = blobs.stage()
    for offset in range(0, len(data), 1_000_000):
        staged.write(data[offset:offset + 1_000_000])
    staged.close()
    name = blobs.commit(staged)
    assert blobs.size(name) == len(data) and blobs.count_staging(-1) == 0
    client = S3Location.parse(f"s3://{BUCKET}/{tmp_path.name}", server.env).store(10, 0, 0)
    assert (obstore.head(client, name)["e_tag"] or "").strip('"').endswith("-3")
    whole = b"".join(blobs.read(name, offset, 5_000_000)
                     for offset in range(0, len(data), 5_000_000))
    assert hashlib.sha256(whole).hexdigest() == staged.sha256
    for offset, length in [(PART_BYTES - 1, 2), (PART_BYTES - 65_536, 131_072),
                           (2 * PART_BYTES - 7, 20), (PART_BYTES - 3, PART_BYTES + 6),
                           (len(data) - 5, 100)]:
        assert blobs.read(name, offset, length) == data[offset:offset + length]


def test_commits_and_reads_run_side_by_side_in_threads(blobs: S3BlobStore) -> None:
    """As the service runs them, each in a worker thread: none sees another's bytes."""
    def round_trip(n: int) -> bytes:
        staged = blobs.stage()
        staged.write(b"%d" % n * 10_000)
        staged.close()
        return blobs.read(blobs.commit(staged), 0, 100_000)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(round_trip, range(32))) == [b"%d" % n * 10_000 for n in range(32)]


@pytest.fixture
def unanswering() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(("change", "reason"), [
    pytest.param({"AWS_SECRET_ACCESS_KEY": "wrong"}, "SignatureDoesNotMatch", id="secret"),
    pytest.param({"AWS_ACCESS_KEY_ID": "nobody"}, "InvalidAccessKeyId", id="key"),
    pytest.param({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_server.free_ports(1)[0]}"},
                 "Connection refused", id="nobody-listening"),
    pytest.param({"AWS_ENDPOINT_URL": "unanswering"}, "Timeout", id="no-answer"),
    pytest.param("no-such-bucket", "NoSuchBucket", id="bucket"),
])
def test_check_says_quickly_why_the_bucket_cannot_be_reached(
        server: S3Server, tmp_path: Path, unanswering: str, change: dict[str, str] | str,
        reason: str) -> None:
    """A wrong secret or key, an endpoint nobody listens on or that never answers, a missing
    bucket: an OSError naming the store and the reason, within a few seconds."""
    env = server.env
    url = f"s3://{BUCKET}/check"
    if isinstance(change, str):
        url = f"s3://{change}/check"
    else:
        env.update({k: unanswering if v == "unanswering" else v for k, v in change.items()})
    store = S3BlobStore.from_url(url, tmp_path / "staging", env)
    started = time.monotonic()
    with pytest.raises(OSError, match=reason) as raised:
        store.check()
    assert time.monotonic() - started < CHECK_SECONDS + 2
    assert str(raised.value).startswith(f"{url} at {env['AWS_ENDPOINT_URL']} cannot be reached")


def test_an_upload_cut_short_is_found_and_aborted_by_discard_staging(
        server: S3Server, blobs: S3BlobStore, tmp_path: Path) -> None:
    """A process killed while committing leaves its spool file and an incomplete multipart
    upload: one leftover to another process over the same staging and prefix (none to a
    store on another prefix, none younger than the grace), which discard_staging aborts."""
    committing = subprocess.Popen(
        [sys.executable, "-c", COMMIT_BIG_BLOB, str(tmp_path / "staging"), tmp_path.name],
        cwd=ROOT, env={**os.environ, **server.env}, stdout=subprocess.PIPE, text=True)
    try:
        assert committing.stdout is not None and committing.stdout.readline() == "commit\n"
        watcher = server.blob_store(tmp_path.name, tmp_path / "watcher-staging")
        deadline = time.monotonic() + 30
        while watcher.count_staging(-1) == 0:  # no spool file there: only an upload counts
            assert committing.poll() is None and time.monotonic() < deadline
        committing.kill()
    finally:
        committing.kill()
        committing.wait()
    other_prefix = server.blob_store(f"{tmp_path.name}-other", tmp_path / "other-staging")
    assert other_prefix.count_staging(-1) == 0
    assert blobs.count_staging(3600) == 0 and blobs.discard_staging(3600) == 0
    assert blobs.count_staging(-1) == 1
    assert blobs.discard_staging(-1) == 1
    assert blobs.count_staging(-1) == 0 == watcher.count_staging(-1)
    assert list((tmp_path / "staging").iterdir()) == [] and list(blobs.names(-1)) == []


COMMIT_BIG_BLOB = """
import os, sys
from pathlib import Path
from storage.s3_blobs import PART_BYTES, S3BlobStore
blobs = S3BlobStore.from_url(f"s3://pacs/{sys.argv[2]}", Path(sys.argv[1]))
staged = blobs.stage()
for _ in range(32):
    staged.write(os.urandom(PART_BYTES))
staged.close()
print("commit", flush=True)
blobs.commit(staged)
"""


@pytest.mark.parametrize(("url", "env", "error"), [
    ("s3://", {}, "not an s3://bucket/prefix URL"),
    ("gs://bucket/prefix", {}, "not an s3://bucket/prefix URL"),
    ("s3://bucket", {"AWS_ENDPOINT_URL": "http://s3.example.com"}, "plain http"),
    ("s3://bucket", {"AWS_ENDPOINT_URL": "ftp://127.0.0.1"}, "not an http"),
    ("s3://bucket", {"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
])
def test_configuration_that_names_no_bucket_is_refused(url: str, env: dict[str, str],
                                                       error: str) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}
    with pytest.raises(ValueError, match=error):
        S3Location.parse(url, {**keys, **env})


def test_configuration_is_read_as_the_aws_tools_read_it() -> None:
    keys = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}
    assert S3Location.parse("s3://b/a/prefix/", {**keys, "AWS_DEFAULT_REGION": "eu-west-3"}) \
        == S3Location("b", "a/prefix", "https://s3.eu-west-3.amazonaws.com", "eu-west-3",
                      "key", "secret", "")
    where = S3Location.parse("s3://b", {
        **keys, "AWS_ENDPOINT_URL": "https://one", "AWS_ENDPOINT_URL_S3": "http://[::1]:9000/",
        "AWS_REGION": "r", "AWS_DEFAULT_REGION": "not this", "AWS_SESSION_TOKEN": "t"})
    assert (where.prefix, where.endpoint, where.region, where.session_token) == (
        "", "http://[::1]:9000", "r", "t")
    assert S3Location.parse("s3://b", {**keys, "AWS_ENDPOINT_URL": "http://minio:9000",
                                       "AWS_ALLOW_HTTP": "true"}).endpoint == "http://minio:9000"
