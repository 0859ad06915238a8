"""DICOM JSON (PS3.18 F.2) and Native DICOM Model XML (PS3.19 A.1) metadata for Store from
metadata and bulk data: valid instances, hypothesis strategies that bend them, and the
multipart bodies that carry them (shared by the property tests and the live attack)."""

import random
from typing import Any

from hypothesis import strategies as st
from pydicom.uid import generate_uid

from tests.fuzz.nasty import words

EXPLICIT_LE = "1.2.840.10008.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BOUNDARY = "fuzz-metadata-boundary"
JSON_TYPE = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'
XML_TYPE = f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'

# Attributes of every kind of VR, with a value of the right type for each.
ATTRIBUTES: dict[str, tuple[str, Any]] = {
    "00080005": ("CS", "ISO_IR 192"),
    "00080020": ("DA", "20240315"),
    "00080030": ("TM", "101500"),
    "0008002A": ("DT", "20240315101500.000000"),
    "00080060": ("CS", "OT"),
    "00100010": ("PN", {"Alphabetic": "Fuzz^Json"}),
    "00100020": ("LO", "FUZZ-JSON"),
    "00101010": ("AS", "042Y"),
    "00101030": ("DS", 72.5),
    "00200013": ("IS", 1),
    "00280002": ("US", 1),
    "00280004": ("CS", "MONOCHROME2"),
    "00280010": ("US", 4),
    "00280011": ("US", 4),
    "00280100": ("US", 8),
    "00280101": ("US", 8),
    "00280102": ("US", 7),
    "00280103": ("US", 0),
    "00181063": ("DS", 33.3),
    "00189219": ("SS", -3),
    "00189220": ("FD", 1.5),
    "00209153": ("FD", 2.5),
    "00186011": ("SQ", {}),
    "00091010": ("UN", None),
    "00200037": ("DS", 1.0),
    "00280009": ("AT", "00181063"),
    "00400275": ("SQ", {"00400009": {"vr": "SH", "Value": ["SPS"]}}),
    "00081140": ("SQ", {"00081150": {"vr": "UI", "Value": [SECONDARY_CAPTURE]}}),
    "00660022": ("FL", 0.25),
    "00720068": ("LT", "text"),
    "00081190": ("UR", "http://example.com/x"),
    "00283010": ("SQ", {"00283002": {"vr": "US", "Value": [4, 0, 8]}}),
    "7FE00010": ("OB", None),
}
VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
       "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
       "UL", "UN", "UR", "US", "UT", "UV", "XX", "ob", "", "S"]


def instance(study: str | None = None, series: str | None = None, sop: str | None = None,
             pixels: bool = True) -> dict[str, Any]:
    """A valid Secondary Capture instance with 4x4 8-bit pixels in the bulk part
    `pixels` (when `pixels`)."""
    out: dict[str, Any] = {
        "00020010": {"vr": "UI", "Value": [EXPLICIT_LE]},
        "00080016": {"vr": "UI", "Value": [SECONDARY_CAPTURE]},
        "00080018": {"vr": "UI", "Value": [sop or generate_uid()]},
        "0020000D": {"vr": "UI", "Value": [study or generate_uid()]},
        "0020000E": {"vr": "UI", "Value": [series or generate_uid()]},
    }
    for key, (vr, value) in ATTRIBUTES.items():
        if vr in ("UN", "OB"):
            continue
        out[key] = {"vr": vr, "Value": [value]}
    if pixels:
        out["7FE00010"] = {"vr": "OB", "BulkDataURI": "pixels"}
    return dict(sorted(out.items()))


PIXELS = bytes(range(16))


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (what orjson.loads can hand the server)."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=8)


def element_values(vr: str) -> st.SearchStrategy[Any]:
    """Values for `vr`: of the right type but out of range, and of every other type."""
    typed: dict[str, st.SearchStrategy[Any]] = {
        "US": st.integers(-70000, 140000), "SS": st.integers(-70000, 70000),
        "UL": st.integers(-(2**33), 2**33), "SL": st.integers(-(2**33), 2**33),
        "UV": st.integers(-(2**65), 2**65), "SV": st.integers(-(2**65), 2**65),
        "FL": st.floats(allow_nan=False), "FD": st.floats(allow_nan=False),
        "DS": st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                        st.integers(-(10**20), 10**20), st.text(max_size=20)),
        "IS": st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=False,
                                                                 allow_infinity=False),
                        st.text(max_size=14)),
        "AT": words("0123456789ABCDEFabcdefxyz", max_size=10),
        "PN": st.one_of(st.dictionaries(st.sampled_from(["Alphabetic", "Ideographic",
                                                         "Phonetic", "Other"]),
                                        st.one_of(st.text(max_size=20), json_values()),
                                        max_size=3), st.text(max_size=20)),
        "SQ": st.one_of(st.just({}), st.dictionaries(st.sampled_from(list(ATTRIBUTES)),
                                                     st.builds(lambda v: {"vr": "US",
                                                                          "Value": [v]},
                                                               st.integers(-1, 70000)),
                                                     max_size=2)),
    }
    return st.one_of(typed.get(vr, st.text(max_size=70)), json_values())


@st.composite
def elements(draw: st.DrawFn, key: str) -> Any:
    """An element for `key`: its usual VR or another, with Value, InlineBinary or
    BulkDataURI, in the right shape or not."""
    vr = draw(st.one_of(st.just(ATTRIBUTES.get(key, ("LO", ""))[0]), st.sampled_from(VRS)))
    shape = draw(st.sampled_from(["value", "value", "values", "inline", "bulk", "empty",
                                  "raw", "novr"]))
    if shape == "value":
        return {"vr": vr, "Value": [draw(element_values(vr))]}
    if shape == "values":
        return {"vr": vr, "Value": draw(st.one_of(st.lists(element_values(vr), max_size=4),
                                                  json_values()))}
    if shape == "inline":
        return {"vr": vr, "InlineBinary": draw(st.one_of(
            st.sampled_from(["AAEC", "AAE=", "====", "A", "ÿ", ""]), json_values()))}
    if shape == "bulk":
        return {"vr": vr, "BulkDataURI": draw(st.one_of(
            st.sampled_from(["pixels", "missing", ""]), json_values()))}
    if shape == "empty":
        return {"vr": vr}
    if shape == "novr":
        return {"Value": [draw(element_values(vr))]}
    return draw(json_values())


@st.composite
def json_instances(draw: st.DrawFn) -> Any:
    """A valid instance with a few elements replaced, removed or added."""
    study, series, sop = (f"2.25.{draw(st.integers(1, 2**128))}" for _ in range(3))
    out: dict[str, Any] = instance(study, series, sop)
    keys = st.one_of(st.sampled_from([*ATTRIBUTES, "00020010", "00080016", "00080018",
                                      "0020000D", "0020000E", "00020002", "00000000"]),
                     words("0123456789ABCDEFabcdefxyz", max_size=9))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(keys)
        if draw(st.integers(0, 4)) == 0:
            out.pop(key, None)
        else:
            out[key] = draw(elements(key))
    other = instance(study, series, f"{sop}.1")
    return draw(st.one_of(st.just(out), st.just([out]), st.just([out, other]),
                          json_values()))


def multipart(parts: list[tuple[str, bytes, str | None]]) -> bytes:
    """(Content-Type, data, Content-Location) parts as a multipart/related body."""
    body = bytearray()
    for ctype, data, location in parts:
        where = f"Content-Location: {location}\r\n" if location is not None else ""
        body += f"--{BOUNDARY}\r\nContent-Type: {ctype}\r\n{where}\r\n".encode() + data + b"\r\n"
    return bytes(body + f"--{BOUNDARY}--\r\n".encode())


def with_pixels(metadata: bytes, metadata_type: str = "application/dicom+json") -> bytes:
    """A Store body: one metadata part, and the pixels at Content-Location `pixels`."""
    return multipart([(metadata_type, metadata, None),
                      ("application/octet-stream", PIXELS, "pixels")])


# -- XML -----------------------------------------------------------------------------------

XML_NAMES = ["NativeDicomModel", "DicomAttribute", "Value", "Item", "PersonName",
             "Alphabetic", "FamilyName", "GivenName", "BulkData", "InlineBinary",
             "SingleByte", "Other"]
XML_ATTRIBUTES = ["tag", "vr", "keyword", "number", "privateCreator", "uri", "xmlns"]


def xml_instance(study: str | None = None) -> str:
    """A valid instance as a NativeDicomModel document (pixels at `pixels`)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">']
    for key, element in instance(study).items():
        lines.append(f'<DicomAttribute tag="{key}" vr="{element["vr"]}">')
        for number, value in enumerate(element.get("Value", []), 1):
            if element["vr"] == "PN":
                lines.append(f'<PersonName number="{number}"><Alphabetic><FamilyName>Fuzz'
                             '</FamilyName></Alphabetic></PersonName>')
            elif element["vr"] == "SQ":
                lines.append(f'<Item number="{number}"></Item>')
            else:
                lines.append(f'<Value number="{number}">{value}</Value>')
        if "BulkDataURI" in element:
            lines.append(f'<BulkData uri="{element["BulkDataURI"]}"/>')
        lines.append("</DicomAttribute>")
    lines.append("</NativeDicomModel>")
    return "\n".join(lines)


def xml_mutation(rng: random.Random, text: str) -> str:
    """One textual mutation of an XML document: a name, an attribute, a value or the
    structure replaced, or bytes cut or inserted."""
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    kind = rng.randrange(9)
    if kind == 0:
        lines[at] = lines[at].replace(rng.choice(XML_NAMES), rng.choice(XML_NAMES), 1)
    elif kind == 1:
        lines[at] = lines[at].replace(f'{rng.choice(XML_ATTRIBUTES)}="',
                                      f'{rng.choice(XML_ATTRIBUTES)}="', 1)
    elif kind == 2:
        value = rng.choice(["", "0", "-1", "x", "00100010", "ZZ", "1e999", "é", "&amp;",
                            "&#0;", "&lt;", "9" * 50, "0.5", "00000000", "FFFFFFFF"])
        lines[at] = lines[at].replace('="', f'="{value}', 1) if rng.random() < 0.5 else \
            lines[at].replace('">', f'">{value}', 1)
    elif kind == 3:
        del lines[at]
    elif kind == 4:
        lines.insert(at, rng.choice(lines))
    elif kind == 5:
        return text[:rng.randrange(len(text) + 1)]
    elif kind == 6:
        lines.insert(at, rng.choice([
            "<Item number=\"1\"><DicomAttribute tag=\"00100010\" vr=\"PN\"/></Item>",
            "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>",
            "<![CDATA[<DicomAttribute>]]>", "<?pi x?>", "<!-- comment -->", "&b;", "\0",
            "<DicomAttribute tag=\"00091010\" vr=\"LO\" privateCreator=\"X\"><Value number="
            "\"1\">p</Value></DicomAttribute>",
            "<DicomAttribute tag=\"00091010\" vr=\"LO\" privateCreator=\"\"/>",
            "<DicomAttribute tag=\"00101030\" vr=\"DS\"><Value number=\"1\">NaN</Value>"
            "</DicomAttribute>",
            "<DicomAttribute tag=\"00280010\" vr=\"US\"><Value number=\"1\">99999999</Value>"
            "</DicomAttribute>"]))
    elif kind == 7:
        lines[at] = lines[at].replace("number=\"1\"", rng.choice(
            ["number=\"0\"", "number=\"2\"", "number=\"١\"", "", "number=\"1\" number2=\"3\""]))
    else:
        lines[at] = lines[at].replace(">", "", 1)
    return "\n".join(lines)


def xml_documents() -> st.SearchStrategy[str]:
    """A valid document bent by up to four mutations, or short arbitrary markup."""
    mutated = st.builds(lambda seed, count: _mutated_xml(seed, count),
                        st.integers(0, 2**32), st.integers(1, 4))
    markup = st.lists(st.one_of(st.sampled_from(XML_NAMES).map(lambda n: f"<{n}>"),
                                st.sampled_from(XML_NAMES).map(lambda n: f"</{n}>"),
                                st.text(max_size=10)), max_size=10).map("".join)
    return st.one_of(mutated, mutated, markup)


def _mutated_xml(seed: int, count: int) -> str:
    rng = random.Random(seed)
    text = xml_instance()
    for _ in range(count):
        text = xml_mutation(rng, text)
    return text
