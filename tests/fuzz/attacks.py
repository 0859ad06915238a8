"""Malformed (and some valid) requests for the live attack, each drawn from a
`random.Random`: mutated Part 10 and multipart bodies, bad Accept headers, query strings,
frame lists, rendered parameters and UIDs, bent DICOM JSON and XML metadata (see
attacks_store.py), management API calls with bad bodies, unknown paths and wrong methods,
and raw HTTP that no client library would send.

Nothing here can touch the baseline: deletes, metadata updates and upserts aim only at
instances and resources the attack made itself, in studies of their own.
"""

import random
from collections.abc import Callable

from tests.fuzz.attack_model import (
    BAD_UIDS,
    DICOM,
    FUZZ_DATASET,
    GOOGLE_STORE,
    PART_BOUNDARY,
    STORE_ROOTS,
    Instance,
    Request,
    Targets,
    accept_value,
    pct,
    pick,
    query,
    with_pixels_only,
)
from tests.fuzz.attacks_store import (
    metadata_json,
    metadata_xml,
    multipart_malformed,
    owned_instance,
    owned_write,
    part10_mutant,
    valid_store,
)
from tests.fuzz.mutations import new_uid, source_bytes
from tests.fuzz.nasty import NASTY, QIDO_KEYS

# -- reads ----------------------------------------------------------------------------------


def resource_of(rng: random.Random, item: Instance) -> str:
    study = f"{item.root}/studies/{item.study}"
    series = f"{study}/series/{item.series}"
    return rng.choice([item.path, item.path, f"{item.path}/metadata", f"{item.path}/frames/1",
                       f"{item.path}/rendered", f"{item.path}/thumbnail", study, series,
                       f"{study}/metadata", f"{series}/metadata", f"{series}/rendered",
                       f"{item.path}/bulkdata/7FE00010", f"{item.root}/studies",
                       f"{study}/series", f"{series}/instances", f"{item.path}/frames/1/rendered"])


def bad_accept(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, t.baseline + t.fresh[-50:])
    assert item is not None
    value = accept_value(rng)
    return Request("accept", rng.choice(["GET", "GET", "HEAD"]), resource_of(rng, item),
                   (("Accept", value),), note=value)


def bad_query(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, t.baseline)
    assert item is not None
    uid = rng.choice([item.study, item.series, pct(rng.choice(BAD_UIDS), "%"), new_uid(rng)])
    root = rng.choice(STORE_ROOTS)
    scope = rng.choice([f"{root}/studies", f"{root}/series", f"{root}/instances",
                        f"{root}/studies/{uid}/series", f"{root}/studies/{uid}/instances",
                        f"{root}/studies/{item.study}/series/{uid}/instances"])
    text = query(rng, QIDO_KEYS, NASTY + [item.study, "CT", "MR", "1", "10", "0"],
                 rng.randint(1, 6))
    accept = rng.choice([None, None, "application/dicom+json", "multipart/related; "
                         "type=application/dicom+xml", accept_value(rng)])
    headers = (("Accept", accept),) if accept is not None else ()
    return Request("qido", "GET", f"{scope}?{text}", headers, note=text[:200])


FRAME_ACCEPTS = ["multipart/related; type=application/octet-stream",
                 "multipart/related; type=application/octet-stream; transfer-syntax=*",
                 "multipart/related; type=image/jpeg", "multipart/related; type=image/jls",
                 "multipart/related; type=image/jp2", "multipart/related; type=image/png",
                 "multipart/related; type=image/dicom-rle", "multipart/related; type=image/jxl",
                 "multipart/related; type=image/jphc",
                 "multipart/related; type=application/x-deflate",
                 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
                 "multipart/related; type=application/octet-stream; "
                 "transfer-syntax=1.2.840.10008.1.2.2", "image/png", "*/*"]
FRAME_TOKENS = ["0", "1", "2", "3", "15", "16", "30", "31", "-1", "1.0", "1 2", "²", "١",
                "99999999999999999999999", "10000000000", "+1", "0x1", "1e3", "", " ", "%20",
                "1%2C2", "%00", "a", "1,", ",1", "01", "٣"]


def bad_frames(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, with_pixels_only(t.baseline) + with_pixels_only(t.fresh[-50:]))
    assert item is not None
    count = rng.choice((1, 1, 2, 3, 5, 20))
    text = ",".join(pct(rng.choice(FRAME_TOKENS), "%") if rng.random() < 0.6
                    else str(rng.randint(1, item.frames + 1)) for _ in range(count))
    if rng.random() < 0.03:
        text = ",".join(["1"] * rng.choice([10_001, 300]))
    suffix = rng.choice(["", "", "", "/rendered", "/thumbnail"])
    accept = rng.choice(FRAME_ACCEPTS) if rng.random() < 0.8 else accept_value(rng)
    return Request("frames", "GET", f"{item.path}/frames/{text or '1'}{suffix}",
                   (("Accept", accept),), note=f"{text[:80]} Accept {accept}")


RENDER_VALUES = {
    "viewport": ["64,64", "0,0", "-1,5", "1,1", "10001,10", "32,32,0,0,10,10", "32,32,,,,",
                 "32,32,-1,0,5,5", "32,32,0,0,-16,-16", "32,32,1e9,1e9,1,1", "32,32,0,0,0,1",
                 "64,64,0,0,inf,inf", "64,64,nan,0,1,1", "a,b", "64", "64,64,1", "１,２",
                 "64,64,0,0,1e308,1e308", "2000,2000"],
    "window": ["40,400", "40,400,linear", "0,1,sigmoid", "0,0", "0,-1", "nan,1", "1e308,1e308",
               "0,1e-300,linear-exact", "-1e308,1", "a,b", "40", "40,400,cubic", "40,400,",
               "inf,1", "40,0.5", "0,1e308,sigmoid"],
    "quality": ["1", "100", "0", "101", "-1", "50.5", "", "x", "١", "99999999999999999999"],
    "annotation": ["", "patient", "technique", "x"],
    "iccprofile": ["no", "yes", "srgb", "", "NO"],
    "charset": ["utf-8", "x"],
    "accept": ["image/png", "image/gif", "image/jp2", "text/html", "image/*", "x"],
}


def bad_rendered(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, with_pixels_only(t.baseline) + with_pixels_only(t.fresh[-50:]))
    assert item is not None
    study = f"{item.root}/studies/{item.study}"
    target = rng.choice([item.path, item.path, f"{study}/series/{item.series}", study,
                         f"{item.path}/frames/{rng.randint(1, item.frames)}",
                         f"{item.path}/frames/1,{min(2, item.frames)}"])
    params = []
    for key in rng.sample(sorted(RENDER_VALUES), rng.randint(0, 4)):
        value = rng.choice(RENDER_VALUES[key]) if rng.random() < 0.8 else rng.choice(NASTY)
        if value in ("2000,2000",) and rng.random() < 0.9:
            value = "200,200"  # big renders only now and then: they cost seconds
        params.append(f"{key}={pct(value, ',')}")
    accept = rng.choice([None, "image/jpeg", "image/png", "image/gif",
                         "multipart/related; type=image/png", "image/jp2", accept_value(rng)])
    headers = (("Accept", accept),) if accept is not None else ()
    resource = rng.choice(["rendered", "rendered", "thumbnail"])
    return Request("rendered", "GET", f"{target}/{resource}?{'&'.join(params)}", headers,
                   note="&".join(params))


def bad_uids(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, t.baseline)
    assert item is not None
    uids = [item.study, item.series, item.sop]
    at = rng.randrange(3)
    uids[at] = pct(rng.choice(BAD_UIDS), "%") if rng.random() < 0.8 else new_uid(rng)
    path = f"{item.root}/studies/{uids[0]}"
    depth = rng.randrange(at, 3)
    if depth >= 1:
        path += f"/series/{uids[1]}"
    if depth >= 2:
        path += f"/instances/{uids[2]}"
    path += rng.choice(["", "", "/metadata", "/rendered", "/frames/1", "/bulkdata/7FE00010",
                        "/thumbnail", ":getStudyMetrics", ":getSeriesMetrics",
                        ":getStorageInfo"])
    method = rng.choice(["GET", "GET", "HEAD", "DELETE", "OPTIONS", "POST", "PUT", "PATCH"])
    body = rng.choice([None, b"", b"{}", b"[]", source_bytes("generated")]) \
        if method in ("POST", "PUT", "PATCH") else None
    headers = (("Content-Type", rng.choice([DICOM, "application/json", "text/plain"])),) \
        if body is not None else ()
    return Request("uids", method, path, headers, body, note=f"bad UID at level {at}")


def baseline_read(rng: random.Random, t: Targets) -> Request:
    """A valid read of a baseline instance, some with legitimate odd parameters."""
    item = pick(rng, t.baseline)
    assert item is not None
    choice = rng.randrange(7)
    if choice == 0:
        return Request("valid", "GET", item.path,
                       (("Accept", f"{DICOM}; transfer-syntax=*"),), note="as stored")
    if choice == 1 and item.pixels:
        frames = ",".join(str(rng.randint(1, item.frames)) for _ in range(rng.randint(1, 3)))
        return Request("valid", "GET", f"{item.path}/frames/{frames}",
                       (("Accept", rng.choice(FRAME_ACCEPTS)),), note=frames)
    if choice == 2 and item.pixels:
        viewport = f"{rng.randint(1, 300)},{rng.randint(1, 300)}"
        window = f"{rng.uniform(-2000, 2000):.3f},{rng.uniform(1, 4000):.3f}"
        return Request("valid", "GET", f"{item.path}/rendered?viewport={viewport}&window="
                       f"{window}&quality={rng.randint(1, 100)}", note="rendered")
    if choice == 3:
        return Request("valid", "GET", f"{item.root}/studies?StudyInstanceUID={item.study}"
                       "&includefield=all", note="search")
    if choice == 4:
        return Request("valid", "OPTIONS", item.path, note="capabilities")
    return Request("valid", "GET", f"{item.path}/metadata",
                   (("Accept", rng.choice(["application/dicom+json",
                                           "multipart/related; type=application/dicom+xml"])),),
                   note="metadata")


FOLLOW_UPS = [
    ("/metadata", "application/dicom+json"),
    ("/metadata", 'multipart/related; type="application/dicom+xml"'),
    ("", "multipart/related; type=application/dicom; transfer-syntax=*"),
    ("", "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
    ("", "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"),
    ("", "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.80"),
    ("", "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"),
    ("", "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.5"),
    ("/frames/1", "multipart/related; type=application/octet-stream; transfer-syntax=*"),
    ("/frames/1", "multipart/related; type=application/octet-stream"),
    ("/frames/1", "multipart/related; type=image/jls"),
    ("/frames/1", "multipart/related; type=image/png"),
    ("/frames/1", "multipart/related; type=image/jp2"),
    ("/frames/2", "multipart/related; type=application/octet-stream; transfer-syntax=*"),
    ("/rendered", "image/jpeg"),
    ("/rendered?window=100,50,sigmoid&viewport=33,17", "image/png"),
    ("/frames/1/rendered", "image/gif"),
    ("/thumbnail", "image/png"),
    ("/bulkdata/7FE00010", "application/octet-stream"),
]


def fresh_read(rng: random.Random, t: Targets) -> Request:
    """What a client asks of an instance the attack stored (mutants that parsed)."""
    item = pick(rng, t.fresh)
    if item is None:
        return baseline_read(rng, t)
    resource, accept = rng.choice(FOLLOW_UPS)
    path = item.path + resource
    if rng.random() < 0.1:  # its study, with whatever else is in it
        path = f"{item.root}/studies/{item.study}" + rng.choice(["/metadata", "/rendered",
                                                                 "", "/series"])
        accept = "*/*"
    return Request("fresh", "GET", path, (("Accept", accept),),
                   note=f"stored from {item.origin}")


# -- management, unknown paths, wrong methods -------------------------------------------------

JSON_BODIES: list[bytes] = [
    b"", b"{}", b"[]", b"null", b"{", b"not json", b"\xff\xfe", b'{"timeZone": 5}',
    b'{"timeZone": "Mars/Olympus"}', b'{"labels": 5}', b'{"labels": {"a": 5}}',
    b'{"labels": {"pacs-profile": "nonsense"}}', b'{"labels": {"pacs-profile": "full"}}',
    b'{"labels": {"', b'{"notificationConfig": {"pubsubTopic": 1}}',
    b'{"policy": "x"}', b'{"policy": {"bindings": "x"}}',
    b'{"policy": {"bindings": [{"role": 5, "members": "x"}]}}',
    b'{"policy": {"bindings": [{"role": "roles/x", "members": [5]}], "etag": "!!"}}',
    b'{"permissions": 5}', b'{"permissions": ["x", 5, null]}',
    b'{"gcsSource": {"uri": 5}}', b'{"gcsSource": {"uri": "gs://"}}',
    b'{"gcsSource": {"uri": "gs://fuzz-bucket/*.dcm"}}', b'{"gcsSource": "x"}',
    b'{"gcsSource": {"uri": "gs://fuzz-bucket/a/../b"}}', b'{"gcsSource": {"uri": "s3://x"}}',
    b'{"gcsDestination": {"uriPrefix": "gs://fuzz-bucket/out"}}',
    b'{"gcsDestination": {"uriPrefix": 5}}', b'{"gcsDestination": []}',
    b'{"blobStorageSettings": {"blobStorageClass": 5}}', b"[" * 2000 + b"]" * 2000,
    b'{"a": ' * 300 + b"1" + b"}" * 300, b'{"timeZone": "' + b"x" * 100_000 + b'"}',
    b'{"streamConfigs": [{"bigqueryDestination": 1}]}', b"1e999999", b'"\\ud800"',
]
MANAGEMENT_QUERIES = ["", "datasetId=", "datasetId=a/b", "datasetId=..", "datasetId=x" * 3,
                      "datasetId=%00", "dicomStoreId=", "dicomStoreId=%E2%80%AE",
                      "pageSize=abc", "pageSize=-1", "pageSize=99999999999999999999999",
                      "pageSize=0", "pageToken=%zz", "pageToken=!!!", "filter=labels.a%3D",
                      "filter=%28", "updateMask=labels,", "updateMask=%00", "updateMask=x"]


def management(rng: random.Random, t: Targets) -> Request:
    version = rng.choice(["v1", "v1", "v1beta1", "v2", "v1alpha"])
    own = f"projects/p/locations/l/datasets/att-{rng.randrange(40)}"
    project = rng.choice(["p", "local", "%2e%2e", "p%2Fq", "%C3%A9", "a" * 300])
    dataset = rng.choice([own, own, FUZZ_DATASET, f"projects/{project}/locations/l/datasets/x"])
    store = rng.choice([f"{dataset}/dicomStores/s{rng.randrange(5)}",
                        f"{FUZZ_DATASET}/dicomStores/google", f"{dataset}/dicomStores/%00"])
    safe = store.startswith("projects/p/locations/l/datasets/att-") or store == GOOGLE_STORE
    choices = [
        ("GET", f"/{version}/projects"), ("GET", f"/{version}/projects/{project}"),
        ("GET", f"/{version}/projects/{project}/locations"),
        ("GET", f"/{version}/projects/p/locations/l/datasets"),
        ("POST", f"/{version}/projects/p/locations/l/datasets"),
        ("POST", f"/{version}/projects/{project}/locations/l/datasets"),
        ("GET", f"/{version}/{dataset}"), ("GET", f"/{version}/{dataset}/dicomStores"),
        ("POST", f"/{version}/{dataset}/dicomStores"), ("GET", f"/{version}/{store}"),
        ("GET", f"/{version}/{dataset}/operations"),
        ("GET", f"/{version}/{dataset}/operations/{rng.choice(['1', 'x', '-1', '9' * 30])}"),
        ("POST", f"/{version}/{dataset}/operations/1:cancel"),
        ("GET", f"/{version}/{store}:getDICOMStoreMetrics"),
        ("POST", f"/{version}/{dataset}:testIamPermissions"),
        ("GET", f"/{version}/{dataset}:getIamPolicy"),
        ("POST", f"/{version}/projects/{project}:getIamPolicy"),
        ("PUT", f"/{version}/{dataset}"), ("POST", f"/{version}/{store}"),
    ]
    if dataset.startswith("projects/p/locations/l/datasets/att-"):
        choices += [("PATCH", f"/{version}/{dataset}"), ("DELETE", f"/{version}/{dataset}"),
                    ("POST", f"/{version}/{dataset}:setIamPolicy")]
    if safe:
        choices += [("PATCH", f"/{version}/{store}"), ("POST", f"/{version}/{store}:import")]
        if store != GOOGLE_STORE:
            choices += [("DELETE", f"/{version}/{store}"),
                        ("POST", f"/{version}/{store}:setIamPolicy")]
    if safe and store != GOOGLE_STORE and rng.random() < 0.1:
        choices.append(("POST", f"/{version}/{store}:export"))  # writes every instance
    method, path = rng.choice(choices)
    params = "&".join(rng.choice(MANAGEMENT_QUERIES) for _ in range(rng.randint(0, 2)))
    if method == "POST" and path.endswith("/datasets") and rng.random() < 0.6:
        params = f"datasetId=att-{rng.randrange(40)}&{params}"
    if method == "POST" and path.endswith("/dicomStores") and rng.random() < 0.6:
        params = f"dicomStoreId=s{rng.randrange(5)}&{params}"
    body = rng.choice(JSON_BODIES) if method in ("POST", "PATCH", "PUT") else None
    headers = (("Content-Type", rng.choice(["application/json", "text/plain", "x"])),) \
        if body is not None else ()
    return Request("management", method, f"{path}?{params}" if params else path, headers, body,
                   note=(body or b"")[:120].decode("latin-1"))


PATHS = ["/", "/dicomweb/", "/dicomweb//studies", "/%2e%2e/%2e%2e/etc/passwd", "/studies",
         "/v1", "/v2/projects", "/healthz/x", "/dicomweb/studies/1.2/../../", "/favicon.ico",
         "/dicomweb/studies/" + "1." * 3000 + "1", "/dicomweb/" + "x/" * 500,
         "/dicomweb/studies/1.2/series/1.3/instances/1.4/frames", "/dicomweb/instances/1.2",
         "/dicomweb/studies/1.2/series/1.3/instances/1.4/bulkdata/",
         "/dicomweb/studies/1.2/series/1.3/instances/1.4/bulkdata/%2e%2e/%2e%2e",
         "/dicomweb/series/1.2", "/v1/projects/local/locations/local/datasets/default/"
         "dicomStores/default/dicomWeb/", "/v1/projects/p/locations/l/datasets/fuzz/"
         "dicomStores/nope/dicomWeb/studies", "/dicomweb/studies%2F1.2", "/DICOMWEB/studies",
         "/dicomweb/studies;x=1", "/dicomweb/studies/%", "/dicomweb/studies?%zz=1",
         "/dicomweb/studies?" + "a=1&" * 9000]


def unknown(rng: random.Random, t: Targets) -> Request:
    item = pick(rng, t.baseline)
    assert item is not None
    path = rng.choice(PATHS + [f"{item.path}/{pct(rng.choice(NASTY), '%')}",
                               f"{item.path}/bulkdata/{pct(rng.choice(NASTY), '%/')}",
                               f"{item.path}/bulkdata/00081140/0/7FE00010",
                               f"{item.path}/bulkdata/99999999"])
    method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE",
                         "FOO", "PROPFIND", "get"])
    if method == "DELETE" and any(b.study in path for b in t.baseline):
        method = "PROPFIND"  # deleting a baseline instance would be a valid request
    if method in ("PUT", "POST") and "/studies" in path and any(
            b.study in path for b in t.baseline):
        method = "PATCH"
    headers: tuple[tuple[str, str], ...] = ()
    if rng.random() < 0.1:
        headers = tuple((f"X-H{i}", "v" * 10) for i in range(rng.choice([101, 50])))
    elif rng.random() < 0.1:
        headers = (("X-Big", "b" * 70_000),)
    return Request("unknown", method, path, headers, None, note="")


# -- raw HTTP -------------------------------------------------------------------------------


def raw(rng: random.Random, t: Targets) -> Request:
    data = owned_instance(rng)
    stow = f"multipart/related; type={DICOM}; boundary={PART_BOUNDARY}"
    body = f"--{PART_BOUNDARY}\r\n\r\n".encode() + data + f"\r\n--{PART_BOUNDARY}--\r\n".encode()
    head = "POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    choices: list[tuple[str, bytes]] = [
        ("Content-Length larger than the body", (
            f"{head}Content-Type: {stow}\r\nContent-Length: {len(body) + 5000}\r\n\r\n"
        ).encode() + body),
        ("Content-Length smaller than the body", (
            f"{head}Content-Type: {stow}\r\nContent-Length: {len(body) // 2}\r\n\r\n"
        ).encode() + body),
        ("single part, Content-Length larger", (
            f"{head}Content-Type: {DICOM}\r\nContent-Length: {len(data) * 2}\r\n\r\n"
        ).encode() + data[:len(data) // 2]),
        ("bad chunk size", (f"{head}Content-Type: {stow}\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "zz\r\nabc\r\n0\r\n\r\n").encode()),
        ("no last chunk", (f"{head}Content-Type: {DICOM}\r\nTransfer-Encoding: chunked\r\n\r\n"
                           f"{len(data):x}\r\n").encode() + data + b"\r\n"),
        ("chunk size overflow", (f"{head}Content-Type: {DICOM}\r\nTransfer-Encoding: chunked"
                                 "\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n").encode()),
        ("Content-Length and chunked", (
            f"{head}Content-Type: {stow}\r\nContent-Length: 10\r\nTransfer-Encoding: chunked"
            "\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode()),
        ("Transfer-Encoding gzip", (f"{head}Content-Type: {DICOM}\r\nTransfer-Encoding: "
                                    "gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").encode()),
        ("Content-Encoding gzip garbage", (
            f"{head}Content-Type: {DICOM}\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n"
            "\r\nnot gzip!").encode()),
        ("HTTP/9.9", b"GET /dicomweb/studies HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("no version", b"GET /dicomweb/studies\r\n\r\n"),
        ("garbage", bytes(rng.randrange(256) for _ in range(200)) + b"\r\n\r\n"),
        ("bad escape in path", b"GET /dicomweb/studies/%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("absolute form", b"GET http://other/dicomweb/studies HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space in path", b"GET /dicomweb/stud ies HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("raw UTF-8 in path", "GET /dicomweb/studies/١.٢ HTTP/1.1\r\nHost: x\r\n\r\n"
         .encode()),
        ("control byte in path", b"GET /dicomweb/\x01studies HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("header without colon", b"GET /dicomweb/studies HTTP/1.1\r\nHost x\r\n\r\n"),
        ("folded header", b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\nAccept: a/b,\r\n"
                          b" application/dicom+json\r\n\r\n"),
        ("NUL in header", b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\nAccept: a\0b\r\n\r\n"),
        ("two Content-Types", (f"{head}Content-Type: {stow}\r\nContent-Type: text/plain\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n").encode() + body),
        ("huge header", b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200_000 +
         b"\r\n\r\n"),
        ("Expect 100-continue", (f"{head}Content-Type: {stow}\r\nExpect: 100-continue\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body),
        ("HTTP/1.0 without Host", b"GET /dicomweb/studies HTTP/1.0\r\n\r\n"),
        ("pipelined, second malformed", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                        b"GET /dicomweb/studies?limit=%zz HTTP/1.1\r\n\r\n"
                                        b"\x00\x01\x02 nonsense\r\n\r\n"),
        ("LF line ends", b"GET /dicomweb/studies HTTP/1.1\nHost: x\n\n"),
        ("negative Content-Length", (f"{head}Content-Type: {DICOM}\r\nContent-Length: -1\r\n"
                                     "\r\nabc").encode()),
        ("cut mid-headers", head.encode() + b"Content-Type: multipart/rel"),
    ]
    note, request = rng.choice(choices)
    return Request("raw", "RAW", note, raw=request, note=note)


Generator = Callable[[random.Random, Targets], Request]
# (generator, weight): the mix of one attack
MIX: tuple[tuple[Generator, int], ...] = (
    (part10_mutant, 15), (valid_store, 2), (multipart_malformed, 7), (metadata_json, 6),
    (metadata_xml, 4), (bad_accept, 8), (bad_query, 12), (bad_frames, 8), (bad_rendered, 7),
    (bad_uids, 5), (management, 6), (unknown, 5), (baseline_read, 4), (fresh_read, 8),
    (owned_write, 1), (raw, 1),
)


def draw(rng: random.Random, t: Targets) -> Request:
    """The next request of the attack."""
    generator: Generator = rng.choices([g for g, _ in MIX], [w for _, w in MIX])[0]
    return generator(rng, t)
