"""HTTP-level helpers: multipart/related (PS3.18 8.6.1.2), DICOM JSON (Annex F) and XML.

Written against the standard rather than any server, so that a malformed response fails the
test that received it instead of crashing the suite.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import quote

import requests

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
NATIVE_DICOM_MODEL = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
ANY_TS_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ANY_TS_OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
# Characters that RFC 3986 allows unencoded in a query component and that QIDO gives meaning to:
# wildcards, UID list separators, range dashes (PS3.18 8.3.4.1).
QUERY_SAFE = "*?,-._~:"

# Attribute tags used across the suite (PS3.6).
PATIENT_NAME = "00100010"
PATIENT_ID = "00100020"
STUDY_DATE = "00080020"
STUDY_DESCRIPTION = "00081030"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"
SOP_CLASS = "00080016"
SOP_INSTANCE = "00080018"
STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SERIES_NUMBER = "00200011"
INSTANCE_NUMBER = "00200013"
SLICE_THICKNESS = "00180050"
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
STUDY_RELATED_SERIES = "00201206"
STUDY_RELATED_INSTANCES = "00201208"
SERIES_RELATED_INSTANCES = "00201209"
PIXEL_DATA = "7FE00010"

JsonDataset = dict[str, Any]


@dataclass(frozen=True)
class Part:
    """One body part of a multipart/related message; header names lower-cased."""

    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """`type/subtype` (lower case) and its parameters, quotes removed (RFC 9110 8.3.1)."""
    if not content_type.strip():
        return "", {}
    message = Message()
    message["content-type"] = content_type
    found = message.get_params(header="content-type") or []
    return message.get_content_type(), {k.lower(): v for k, v in found[1:]}


def encode_multipart(parts: list[bytes], part_type: str = "application/dicom",
                     quoted: bool = True) -> tuple[bytes, str]:
    """A multipart/related body and its Content-Type (PS3.18 8.6.1.2, RFC 2387)."""
    boundary = "conformance-" + secrets.token_hex(12)
    chunks = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode())
        chunks.append(part)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    type_param = f'"{part_type}"' if quoted else part_type
    return b"".join(chunks), f"multipart/related; type={type_param}; boundary={boundary}"


def decode_multipart(response: requests.Response) -> list[Part]:
    """The body parts of a multipart/related response; AssertionError if it is not one."""
    kind, params = media_type(response.headers.get("content-type", ""))
    assert kind == "multipart/related", f"expected multipart/related, got {kind!r}"
    boundary = params.get("boundary")
    assert boundary, "multipart/related response without a boundary parameter"
    delimiter = b"\r\n--" + boundary.encode()
    sections = (b"\r\n" + response.content).split(delimiter)
    assert len(sections) >= 2, "no boundary delimiter in the body"
    assert sections[-1].startswith(b"--"), "multipart body without a close delimiter"
    parts = []
    for section in sections[1:-1]:
        head, sep, content = section.partition(b"\r\n\r\n")
        assert sep, "body part without a blank line after its headers"
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers=headers, content=content))
    return parts


def query_url(url: str, params: list[tuple[str, str]]) -> str:
    """`url?k=v&...` percent-encoding only what RFC 3986 requires in a query value."""
    if not params:
        return url
    pairs = "&".join(f"{quote(k, safe='')}={quote(v, safe=QUERY_SAFE)}" for k, v in params)
    return f"{url}?{pairs}"


def search_results(response: requests.Response) -> list[JsonDataset]:
    """QIDO results as a list; an empty list for 204 (PS3.18 10.6.3, 8.3.4.4.1)."""
    if response.status_code == 204:
        return []
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    body = response.json()
    assert isinstance(body, list), f"expected a JSON array, got {type(body).__name__}"
    return body


def values(dataset: JsonDataset, tag: str) -> list[Any]:
    """The Value array of `tag` (Annex F.2.4); [] when absent or empty."""
    return list(dataset.get(tag, {}).get("Value", []))


def first(dataset: JsonDataset, tag: str) -> Any:
    """The first value of `tag`, a PN's Alphabetic group as a string; None when absent."""
    found = values(dataset, tag)
    if not found:
        return None
    value = found[0]
    return value.get("Alphabetic") if isinstance(value, dict) and "Alphabetic" in value else value


def store_response(response: requests.Response) -> JsonDataset:
    """A Store response body (Annex I module) as DICOM JSON, from JSON or from PS3.19 XML."""
    kind, _ = media_type(response.headers.get("content-type", ""))
    if not response.content:
        return {}
    if kind in (DICOM_XML, "application/xml", "text/xml"):
        return xml_to_json(response.content)
    body = response.json()
    if isinstance(body, list):  # some servers wrap the module in an array
        body = body[0] if body else {}
    assert isinstance(body, dict), f"Store response is not a DICOM JSON object: {body!r:.200}"
    return body


def xml_to_json(document: bytes) -> JsonDataset:
    """PS3.19 Native DICOM Model to DICOM JSON, as far as the Store response needs.

    Elements are matched by local name, so a document outside the PS3.19 namespace still
    parses (`xml_namespace` tells which namespace the root is in).
    """
    return _xml_dataset(ET.fromstring(document))


def xml_namespace(document: bytes) -> str:
    """The namespace URI of the root element ("" when it has none)."""
    tag = ET.fromstring(document).tag
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in node if child.tag.rpartition("}")[2] == name]


def _xml_dataset(node: ET.Element) -> JsonDataset:
    out: JsonDataset = {}
    for attribute in _children(node, "DicomAttribute"):
        tag = attribute.get("tag", "").upper()
        element: dict[str, Any] = {"vr": attribute.get("vr", "UN")}
        items = [_xml_dataset(item) for item in _children(attribute, "Item")]
        names = [_xml_person_name(pn) for pn in _children(attribute, "PersonName")]
        plain = [_xml_value(v.text or "", element["vr"]) for v in _children(attribute, "Value")]
        found = items or names or plain
        if found:
            element["Value"] = found
        for bulk in _children(attribute, "BulkData"):
            element["BulkDataURI"] = bulk.get("uri") or bulk.get("URI")
        out[tag] = element
    return out


def _xml_value(text: str, vr: str) -> Any:
    if vr in ("US", "UL", "SS", "SL", "IS", "UV", "SV"):
        return int(text)
    if vr in ("FL", "FD", "DS"):
        return float(text)
    return text


def _xml_person_name(node: ET.Element) -> dict[str, str]:
    groups = _children(node, "Alphabetic")
    if not groups:
        return {}
    parts = ["FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix"]
    found = [_children(groups[0], p) for p in parts]
    text = "^".join((f[0].text or "") if f else "" for f in found).rstrip("^")
    return {"Alphabetic": text}
