"""Store requests of the live attack: mutated Part 10 (single part and multipart), valid
instances in studies of their own, broken multipart framing, bent DICOM JSON and XML
metadata, and metadata updates and deletes of the attack's own instances (never a baseline
one)."""

import json
import random
from typing import Any

from tests.fuzz.attack_model import (
    DICOM,
    PART_BOUNDARY,
    SCRATCH_ROOT,
    STORE_ROOTS,
    Request,
    Targets,
    accept_value,
    header,
    pick,
)
from tests.fuzz.metadata_bodies import (
    JSON_TYPE,
    XML_TYPE,
    instance,
    multipart,
    with_pixels,
    xml_instance,
    xml_mutation,
)
from tests.fuzz.mutations import SOURCES, mutated, new_uid, new_uids, source_bytes


def part10_mutant(rng: random.Random, t: Targets) -> Request:
    name = rng.choice([*SOURCES, "generated"])
    data, notes = mutated(rng, source_bytes(name))
    root = rng.choice(STORE_ROOTS)
    accept = rng.choice(["application/dicom+json"] * 6 + ["application/dicom+xml", "*/*",
                                                          accept_value(rng)])
    note = f"{name}: {'; '.join(notes)}"
    if rng.random() < 0.5:
        kind = "single"
        headers = (("Content-Type", DICOM), ("Accept", accept))
        if rng.random() < 0.2:
            size = rng.choice([1, 7, 100, 4096])
            chunks = tuple(data[i:i + size] for i in range(0, len(data), size))
            return Request("part10", "POST", f"{root}/studies", headers, chunks=chunks,
                           note=f"{kind}, {note}", stores=root)
        return Request("part10", "POST", f"{root}/studies", headers, data, note=f"{kind}, {note}",
                       stores=root)
    parts = [data]
    for _ in range(rng.choice((0, 0, 1, 2))):
        other, more = mutated(rng, source_bytes(rng.choice([*SOURCES, "generated"])))
        parts.append(other)
        note += f" + {'; '.join(more)}"
    body = b"".join(f"--{PART_BOUNDARY}\r\nContent-Type: {DICOM}\r\n\r\n".encode() + p + b"\r\n"
                    for p in parts) + f"--{PART_BOUNDARY}--\r\n".encode()
    ctype = f'multipart/related; type="{DICOM}"; boundary={PART_BOUNDARY}'
    return Request("part10", "POST", f"{root}/studies", (("Content-Type", ctype),
                                                          ("Accept", accept)),
                   body, note=f"{len(parts)} parts, {note}", stores=root)


def owned_instance(rng: random.Random) -> bytes:
    """A valid 8x8 CT in a new study of its own."""
    return new_uids(rng, source_bytes("generated"))


def valid_store(rng: random.Random, t: Targets) -> Request:
    root = rng.choice([*STORE_ROOTS, SCRATCH_ROOT, SCRATCH_ROOT])
    files = [owned_instance(rng) for _ in range(rng.choice((1, 1, 2)))]
    body = b"".join(f"--{PART_BOUNDARY}\r\n\r\n".encode() + f + b"\r\n" for f in files) + \
        f"--{PART_BOUNDARY}--".encode()
    method = "PUT" if root == SCRATCH_ROOT and rng.random() < 0.3 else "POST"
    return Request("valid-store", method, f"{root}/studies",
                   (("Content-Type", f"multipart/related; boundary={PART_BOUNDARY}"),
                    ("Accept", "application/dicom+json")), body, note=f"{len(files)} valid",
                   stores=root, owned=True)


CONTENT_TYPES = [
    "multipart/related", "multipart/related; type=application/dicom",
    'multipart/related; type="application/dicom"; boundary=', 'multipart/related; boundary=""',
    "multipart/related; boundary={b}x", "multipart/related; boundary=" + "b" * 71,
    "multipart/related; boundary=bad{{boundary}}", 'multipart/related; boundary="{b}',
    "multipart/related; boundary={b}; boundary=other", "multipart/related;;;boundary={b}",
    "multipart/related; type=application/pdf; boundary={b}", "multipart/mixed; boundary={b}",
    "multipart/form-data; boundary={b}", "multipart/related; boundary={b}; type=",
    "Multipart/Related; BOUNDARY={b}", "multipart/related; boundary={b}; charset=ebcdic",
    "multipart/related; type=\"application/dicom+json\"; boundary={b}",
    "multipart/related; type=\"application/dicom+xml\"; boundary={b}",
    "multipart/related; boundary = {b}", "multipart/related; boundary=\"{b}\"; q=0",
    "application/dicom; boundary={b}", "application/dicom+json", "text/plain", "",
    "multipart/related; boundary={b}; type=application/dicom; type=text/plain",
]


def multipart_malformed(rng: random.Random, t: Targets) -> Request:
    files = [owned_instance(rng) for _ in range(rng.choice((1, 2)))]
    b = PART_BOUNDARY
    ctype = f"multipart/related; type={DICOM}; boundary={b}"
    crlf = b"\r\n"
    heads = [f"Content-Type: {DICOM}\r\n".encode()] * len(files)
    preamble, close, note = b"", f"--{b}--\r\n".encode(), ""
    for _ in range(rng.choice((1, 1, 2))):
        kind = rng.randrange(12)
        if kind == 0:
            ctype = rng.choice(CONTENT_TYPES).format(b=b)
            note += f"content-type {ctype!r}; "
        elif kind == 1:
            crlf = rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"])
            note += f"line ends {crlf!r}; "
        elif kind == 2:
            preamble = rng.choice([b"x" * 70_000, b"--" + b.encode() + b"x\r\n", b"\r\n" * 5,
                                   bytes(rng.randrange(256) for _ in range(300))])
            note += f"preamble {len(preamble)} bytes; "
        elif kind == 3:
            close = rng.choice([b"", f"--{b}".encode(), f"--{b}-".encode(),
                                f"--{b}--garbage".encode(), f"--{b}\r\n".encode(),
                                f"--{b}--\r\n--{b}\r\n\r\nmore".encode()])
            note += f"close {close[:30]!r}; "
        elif kind == 4:
            heads[0] = rng.choice([b"X-Pad: " + b"p" * 20_000 + b"\r\n", b"no colon here\r\n",
                                   b": empty name\r\n", b"Content-Type:\r\n",
                                   b"Content-Type: text/plain\r\n",
                                   b"Content-Type: application/dicom+json\r\n",
                                   b"Content-Type: " + bytes(range(1, 32)) + b"\r\n",
                                   b"Content-Type: multipart/related; boundary=inner\r\n",
                                   b" folded: header\r\n", b"Content-Length: 3\r\n",
                                   b"Content-Type: application/dicom\r\n" * 200])
            note += f"part header {heads[0][:30]!r}; "
        elif kind == 5:
            files.insert(rng.randrange(len(files) + 1), rng.choice(
                [b"", b"\0" * 10, b"DICM", source_bytes("generated")[:rng.randrange(1272)]]))
            heads.append(f"Content-Type: {DICOM}\r\n".encode())
            note += "odd part; "
        else:
            note += "cut; " if kind < 9 else "bit flips; "
    body = preamble + b"".join(
        f"--{b}".encode() + crlf + head + crlf + data + crlf
        for head, data in zip(heads, files, strict=False)) + close
    if "cut" in note:
        body = body[:rng.randrange(len(body) + 1)]
    if "bit flips" in note:
        flipped = bytearray(body)
        for _ in range(rng.randint(1, 6) if flipped else 0):  # (a cut may have left nothing)
            at = rng.randrange(len(flipped))
            flipped[at] ^= 1 << rng.randrange(8)
        body = bytes(flipped)
    root = rng.choice(STORE_ROOTS)
    headers = (("Content-Type", header(ctype)), ("Accept", "application/dicom+json"))
    if rng.random() < 0.25:
        size = rng.choice([1, 3, 64, 1000])
        chunks = tuple(body[i:i + size] for i in range(0, len(body), size)) or (b"",)
        return Request("multipart", "POST", f"{root}/studies", headers, chunks=chunks,
                       note=note, stores=root, owned=True)
    return Request("multipart", "POST", f"{root}/studies", headers, body, note=note,
                   stores=root, owned=True)


def bent_json(rng: random.Random, value: Any, path: str = "") -> tuple[Any, str]:
    """`value` with one random edit somewhere inside it, and where and what it was."""
    if isinstance(value, dict) and value and path.count("/") < 6 and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        inner, note = bent_json(rng, value[key], f"{path}/{key}")
        return {**value, key: inner}, note
    if isinstance(value, list) and value and path.count("/") < 6 and rng.random() < 0.7:
        at = rng.randrange(len(value))
        inner, note = bent_json(rng, value[at], f"{path}/{at}")
        return [*value[:at], inner, *value[at + 1:]], note
    new = rng.choice([None, True, 0, -1, 2**64, 2**70, 1.5e308, -0.0, "", "x" * 70, "é",
                       "\u0000", "Ā", "1.2.abc", "2024-13-45", [], {}, [None], [[1]],
                       {"vr": "SQ", "Value": [{"vr": "XX"}]}, {"vr": "US"},
                       {"vr": "US", "Value": [70000]}, {"vr": "OB", "InlineBinary": "!!"},
                       {"vr": "OB", "BulkDataURI": "nowhere"}, {"Alphabetic": 5},
                       {"vr": "PN", "Value": ["not an object"]}, "AAAA" * 10, value, [value]])
    return new, f"{path or '/'} = {json.dumps(new)[:80]}"


def metadata_json(rng: random.Random, t: Targets) -> Request:
    study = new_uid(rng)
    metadata: Any = [instance(study, new_uid(rng), new_uid(rng))]
    notes = []
    for _ in range(rng.randint(1, 4)):
        metadata, note = bent_json(rng, metadata)
        notes.append(note)
    text = json.dumps(metadata).encode()
    if rng.random() < 0.15:
        at = rng.randrange(len(text) + 1)
        junk = rng.choice([b"", b"{", b"]", b"\xff", b'"', b"\\u00"])
        text = text[:at] + junk + text[at:]
        notes.append(f"{junk!r} inserted at {at}")
    style = rng.randrange(6)
    if style == 0:
        body = multipart([("application/dicom+json", text, None)])
    elif style == 1:
        body = multipart([("application/dicom+json", text, None),
                          ("application/octet-stream", b"x" * 16, "pixels"),
                          ("application/octet-stream", b"y" * 16, "pixels")])
    elif style == 2:
        body = multipart([("application/dicom+json", text, None),
                          ("image/jpeg", b"\xff\xd8\xff\xd9", "pixels"),
                          ("application/dicom+xml", xml_instance().encode(), None)])
    else:
        body = with_pixels(text)
    root = rng.choice(STORE_ROOTS)
    return Request("json", "POST", f"{root}/studies", (("Content-Type", JSON_TYPE),
                                                       ("Accept", "application/dicom+json")),
                   body, note="; ".join(notes), stores=root)


def metadata_xml(rng: random.Random, t: Targets) -> Request:
    original = text = xml_instance(new_uid(rng))
    for _ in range(rng.randint(1, 4)):
        text = xml_mutation(rng, text)
    data = text.encode("utf-8", "surrogatepass")
    root = rng.choice(STORE_ROOTS)
    body = with_pixels(data, "application/dicom+xml") if rng.random() < 0.8 else \
        multipart([("application/dicom+xml", data, None), ("application/dicom+xml", data, None)])
    return Request("xml", "POST", f"{root}/studies", (("Content-Type", XML_TYPE),
                                                      ("Accept", "application/dicom+json")),
                   body, note=changed_lines(original, text), stores=root)


def changed_lines(before: str, after: str) -> str:
    """The lines of `after` that `before` lacks (what a mutation did to a document)."""
    kept = set(before.splitlines())
    return " | ".join(line for line in after.splitlines() if line not in kept)[:300] or \
        "(lines removed)"


def owned_write(rng: random.Random, t: Targets) -> Request:
    """A metadata update or delete of an instance the attack stored in a study of its own."""
    item = pick(rng, [i for i in t.owned if i.root == SCRATCH_ROOT]) \
        if rng.random() < 0.7 else pick(rng, t.owned)
    if item is None:
        return valid_store(rng, t)
    level = rng.choice([item.path, f"{item.root}/studies/{item.study}/series/{item.series}",
                        f"{item.root}/studies/{item.study}"])
    if rng.random() < 0.15:
        return Request("owned", "DELETE", level, note="delete own")
    patch: Any = rng.choice([
        [{"op": "replace", "path": "/00100010", "value": {"vr": "PN", "Value": [
            {"Alphabetic": "Up^Dated"}]}}],
        [{"op": "add", "path": "/00081030", "value": {"vr": "LO", "Value": ["x" * 100]}}],
        [{"op": "remove", "path": "/00100010"}], [], {}, None, "x", [1], [{"op": "move"}],
        [{"op": "replace", "path": "/00280010", "value": {"vr": "US", "Value": [1]}}],
        [{"op": "replace", "path": "/0020000D", "value": {"vr": "UI", "Value": ["1.2"]}}],
        [{"op": "add", "path": "/00100010", "value": {"vr": "PN", "Value": [5]}}],
        [{"op": "add", "path": "/00100010", "value": {"vr": "US", "Value": [70000]}}],
        [{"op": "add", "path": "/00101030", "value": {"vr": "DS", "Value": ["abc"]}}],
        [{"op": "add", "path": "/00100010/0", "value": {}}],
        [{"op": "add", "path": "/0008103E", "value": {"vr": "LO", "Value": ["Ā"]}}],
        [{"op": "add", "path": "/00091010", "value": {"vr": "LO", "Value": ["private"]}}],
        [{"op": "add", "path": "/00081140", "value": {"vr": "SQ", "Value": [{"x": 1}]}}],
    ])
    body = json.dumps(patch).encode() if rng.random() < 0.9 else b"{not json"
    root = level.replace("/v1/", "/v1beta1/", 1)
    return Request("owned", "PATCH", f"{root}/metadata", (("Content-Type",
                                                           "application/json"),),
                   body, note=body[:200].decode())
