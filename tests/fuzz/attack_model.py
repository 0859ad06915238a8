"""What the live attack aims at and sends: the request it makes, the instances it knows of
(the baseline, and what it stores along the way), and the helpers its requests are drawn
with, each from a `random.Random`."""

import random
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

DEFAULT_STORE = "projects/local/locations/local/datasets/default/dicomStores/default"
FUZZ_DATASET = "projects/p/locations/l/datasets/fuzz"
GOOGLE_STORE = f"{FUZZ_DATASET}/dicomStores/google"  # holds a baseline too
SCRATCH_STORE = f"{FUZZ_DATASET}/dicomStores/scratch"  # upserts and updates: no baseline
DICOMWEB = "/dicomweb"
STORE_ROOTS = (DICOMWEB, f"/v1/{DEFAULT_STORE}/dicomWeb", f"/v1/{GOOGLE_STORE}/dicomWeb",
               f"/v1beta1/{GOOGLE_STORE}/dicomWeb")
SCRATCH_ROOT = f"/v1beta1/{SCRATCH_STORE}/dicomWeb"
DICOM = "application/dicom"
PART_BOUNDARY = "attack-boundary-9f2c"


@dataclass(frozen=True)
class Request:
    """One request of the attack; `raw` requests go over a socket exactly as they are."""

    kind: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    chunks: tuple[bytes, ...] | None = None  # sent with Transfer-Encoding: chunked
    raw: bytes | None = None
    note: str = ""
    stores: str | None = None  # the root whose Store answer may list new instances
    owned: bool = False  # what it stores is the attack's own (may be deleted, updated)

    def describe(self) -> str:
        headers = "; ".join(f"{k}: {v[:80]}" for k, v in self.headers)
        size = len(self.body) if self.body is not None else \
            sum(map(len, self.chunks)) if self.chunks is not None else \
            len(self.raw) if self.raw is not None else 0
        how = " (chunked)" if self.chunks is not None else " (raw socket)" if self.raw else ""
        return (f"{self.method} {self.path[:240]} [{self.kind}: {self.note[:200]}] "
                f"headers {{{headers}}} body {size} bytes{how}")


@dataclass(frozen=True)
class Instance:
    """A stored instance: the DICOMweb root it lives under and its UIDs."""

    root: str
    study: str
    series: str
    sop: str
    frames: int = 1
    pixels: bool = True
    origin: str = ""  # how the attack stored it

    @property
    def path(self) -> str:
        return f"{self.root}/studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass
class Targets:
    """What the attack aims at; it learns of instances stored along the way."""

    baseline: list[Instance]
    fresh: list[Instance] = field(default_factory=list)  # stored by the attack
    owned: list[Instance] = field(default_factory=list)  # and in studies of its own
    datasets: list[str] = field(default_factory=list)  # created by the attack
    lock: threading.Lock = field(default_factory=threading.Lock)

    def learn(self, request: Request, answer: Any) -> None:
        """Note the instances a Store answer (DICOM JSON) says were stored."""
        if request.stores is None or not isinstance(answer, dict):
            return
        baseline_studies = {b.study for b in self.baseline}
        for item in (answer.get("00081199") or {}).get("Value") or []:
            url = ((item.get("00081190") or {}).get("Value") or [""])[0]
            parts = url.split("/studies/", 1)[-1].split("/")
            if len(parts) != 5:
                continue
            found = Instance(request.stores, parts[0], parts[2], parts[4],
                             origin=request.note[:200])
            with self.lock:
                self.fresh.append(found)
                if request.owned and found.study not in baseline_studies:
                    self.owned.append(found)


# -- helpers ---------------------------------------------------------------------------------

BAD_UIDS = ["1..2", "1.2.", ".1", "x", "1" * 65, "1.2.abc", "%2e%2e", "..", ".", "%00",
            "1.2.3%2F..%2F..", "١.٢", "1 2", "-1", "1.02", "0", "9" * 64, "1.2.3;4",
            "%E2%80%AE1.2", "1.2.3?x=1", "1.2.3#x", "%25", "a" * 300]
MEDIA = ["application/dicom", "application/dicom+json", "application/dicom+xml",
         "application/json", "application/octet-stream", "image/jpeg", "image/png",
         "image/gif", "image/jls", "image/jp2", "image/jphc", "image/jxl", "image/dicom-rle",
         "application/x-deflate", "multipart/related", "multipart/*", "*/*", "image/*",
         "text/html", "application/zip", "video/mp4", "*", "/", "a/", "/b", "x/y/z",
         "application/pdf", "text/plain"]
SYNTAXES = ["*", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
            "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
            "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112",
            "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.8.1", "1.2.3", "", "x"]


def pct(text: str, safe: str = "") -> str:
    return quote(text, safe=safe)


def header(text: str) -> str:
    """`text` as an HTTP header value http.client will send: latin-1, no CR, LF or NUL,
    no surrounding whitespace."""
    value = "".join(c for c in text if c not in "\r\n\0").strip()
    return value.encode("latin-1", "replace").decode("latin-1")


def some(rng: random.Random, values: list[str]) -> str:
    return rng.choice(values) if rng.random() < 0.85 else \
        "".join(rng.choice(values) for _ in range(rng.randint(2, 4)))


def accept_value(rng: random.Random) -> str:
    """An Accept header: a few ranges, with type, transfer-syntax, q and junk parameters."""
    ranges = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choice(MEDIA)
        params = []
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            key = rng.choice(["type", "transfer-syntax", "q", "charset", "boundary", "", "Q",
                              "TYPE", "transfer-syntax"])
            value = rng.choice([rng.choice(MEDIA), rng.choice(SYNTAXES), "0", "0.5", "1.5",
                                "-1", "nan", "inf", "١", "", '"', '"a;b"', '"' + rng.choice(
                                    MEDIA), "x" * 300])
            quoted = f'"{value}"' if rng.random() < 0.3 else value
            params.append(f"{key}={quoted}" if rng.random() < 0.95 else key)
        ranges.append("; ".join([name, *params]))
    text = rng.choice([", ", ",", " , ", ",,"]).join(ranges)
    if rng.random() < 0.05:
        text = text * rng.randint(50, 400)
    return header(text)


def query(rng: random.Random, keys: list[str], values: list[str], count: int) -> str:
    """`count` key=value pairs, percent-encoded, with malformed encodings now and then."""
    pairs = []
    for _ in range(count):
        key, value = some(rng, keys), some(rng, values)
        style = rng.random()
        if style < 0.8:
            pairs.append(f"{pct(key)}={pct(value)}")
        elif style < 0.9:  # unencoded, as careless clients send (less what HTTP forbids)
            text = f"{pct(key)}={value.replace(' ', '+').replace('&', '%26')}"
            pairs.append("".join(c for c in text if "!" <= c <= "~" and c != "#"))
        else:
            pairs.append(rng.choice(["%zz", "=", "&", pct(key), f"{pct(key)}==",
                                     f"{pct(key)}=%", "%%", ";"]))
    return "&".join(pairs)


def pick(rng: random.Random, items: list[Instance]) -> Instance | None:
    return rng.choice(items) if items else None


def with_pixels_only(items: list[Instance]) -> list[Instance]:
    return [i for i in items if i.pixels]
