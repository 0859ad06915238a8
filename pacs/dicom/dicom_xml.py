"""DICOM JSON model (PS3.18 Annex F) ⇄ Native DICOM Model XML (PS3.19 A.1)."""

import re
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from pydicom.datadict import keyword_for_tag

from pacs.ascii_numbers import ascii_int
from pacs.dicom.json_values import MAX_SEQUENCE_DEPTH

NATIVE_DICOM_MODEL = "http://dicom.nema.org/PS3.19/models/NativeDICOM"  # PS3.19 A.1
# Private attributes we emit, with the creator their block is reserved for.
PRIVATE_KEYWORDS = {0x00091097: "FailureDetail"}
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def to_native_xml(dataset: dict[str, Any], namespace: str | None = NATIVE_DICOM_MODEL
                  ) -> bytes:
    """Serialize one DICOM JSON dataset as `<NativeDicomModel>`, in the PS3.19 namespace or,
    with `namespace` None, bare (the shape Google returns)."""
    root = f"<NativeDicomModel xmlns={quoteattr(namespace)}>" if namespace else \
        "<NativeDicomModel>"
    parts: list[str] = [root]
    _dataset(dataset, parts)
    parts.append("</NativeDicomModel>")
    return "".join(parts).encode("utf-8")


def _dataset(dataset: dict[str, Any], out: list[str]) -> None:
    creators = {int(k, 16): e["Value"][0] for k, e in dataset.items()
                if int(k[:4], 16) % 2 and 0x10 <= int(k[4:], 16) <= 0xFF and e.get("Value")}
    for key, element in dataset.items():
        tag = int(key, 16)
        group, elem = tag >> 16, tag & 0xFFFF
        if group % 2 and elem <= 0xFF:
            continue  # private creator elements become the privateCreator attribute
        attrs = f'tag="{key}" vr="{element["vr"]}"'
        keyword = PRIVATE_KEYWORDS.get(tag) or keyword_for_tag(tag)
        if group % 2:
            creator = creators.get((group << 16) | (elem >> 8), "")
            attrs = (f'tag="{group:04X}00{elem & 0xFF:02X}" vr="{element["vr"]}"'
                     f' privateCreator={quoteattr(str(creator))}')
        if keyword:
            attrs += f' keyword="{keyword}"'
        out.append(f"<DicomAttribute {attrs}>")
        _values(element, out)
        out.append("</DicomAttribute>")


def _values(element: dict[str, Any], out: list[str]) -> None:
    if "BulkDataURI" in element:
        out.append(f"<BulkData uri={quoteattr(element['BulkDataURI'])}/>")
    elif "InlineBinary" in element:
        out.append(f"<InlineBinary>{element['InlineBinary']}</InlineBinary>")
    for number, value in enumerate(element.get("Value", []), start=1):
        if element["vr"] == "SQ":
            out.append(f'<Item number="{number}">')
            _dataset(value, out)
            out.append("</Item>")
        elif value is None:  # an empty value (JSON null, PS3.18 F.2.5), read back as null
            name = "PersonName" if element["vr"] == "PN" else "Value"
            out.append(f'<{name} number="{number}"/>')
        elif element["vr"] == "PN":
            out.append(f'<PersonName number="{number}">{_person_name(value)}</PersonName>')
        else:
            out.append(f'<Value number="{number}">{escape(str(value))}</Value>')


def _person_name(value: dict[str, str]) -> str:
    groups = []
    for group in ("Alphabetic", "Ideographic", "Phonetic"):
        if group in value:
            parts = value[group].split("^")
            inner = "".join(f"<{name}>{escape(part)}</{name}>"
                            for name, part in zip(_PN_COMPONENTS, parts, strict=False) if part)
            groups.append(f"<{group}>{inner}</{group}>")
    return "".join(groups)


# --- reading: Native DICOM Model XML → DICOM JSON ------------------------------------------

NUMBER_VRS = frozenset({"DS", "FL", "FD", "IS", "SL", "SS", "SV", "UL", "US", "UV"})
_INTEGER_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV"})
_PN_GROUPS = {"alphabetic": "Alphabetic", "singlebyte": "Alphabetic",
              "ideographic": "Ideographic", "phonetic": "Phonetic"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


class XmlModelError(ValueError):
    """XML that is not a Native DICOM Model dataset; the message says where and why."""


def from_native_xml(data: bytes) -> dict[str, Any]:
    """One `<NativeDicomModel>` document (PS3.19 A.1) as a DICOM JSON dataset. Element and
    attribute names are read without regard to case or namespace, and the `SingleByte` name
    group of older drafts is read as Alphabetic."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise XmlModelError(f"the XML metadata is not well-formed: {exc}") from exc
    if _name(root) != "nativedicommodel":
        raise XmlModelError(f"the XML root is <{_name(root)}>, not <NativeDicomModel>")
    return _read_dataset(root, 0)


def _name(node: ElementTree.Element) -> str:
    return node.tag.rsplit("}", 1)[-1].lower()


def _attribute(node: ElementTree.Element, name: str) -> str | None:
    return next((v for k, v in node.attrib.items() if k.rsplit("}", 1)[-1].lower() == name),
                None)


def _read_dataset(node: ElementTree.Element, depth: int) -> dict[str, Any]:
    if depth > MAX_SEQUENCE_DEPTH:
        raise XmlModelError(f"sequences are nested more than {MAX_SEQUENCE_DEPTH} deep")
    dataset: dict[str, Any] = {}
    for child in node:
        if _name(child) != "dicomattribute":
            raise XmlModelError(f"<{_name(child)}> where a <DicomAttribute> was expected")
        tag, vr = _attribute(child, "tag") or "", _attribute(child, "vr") or ""
        if not _TAG.match(tag) or not re.fullmatch(r"[A-Z]{2}", vr):
            raise XmlModelError(f"a DicomAttribute has tag {tag!r} and vr {vr!r}; both are "
                                "required (eight hex digits, two capital letters)")
        key = _private_key(dataset, tag.upper(), _attribute(child, "privatecreator"))
        dataset[key] = _read_element(child, key, vr, depth)
    return dict(sorted(dataset.items()))


def _private_key(dataset: dict[str, Any], tag: str, creator: str | None) -> str:
    """A private attribute's tag with its creator's block (PS3.5 7.8.1): the XML writes the
    block as 00 and names the creator, which gets (or reuses) a (gggg,00bb) element."""
    group = int(tag[:4], 16)
    if creator is None or group % 2 == 0 or int(tag[4:6], 16) != 0:
        return tag
    reserved = {e["Value"][0]: k for k, e in dataset.items()
                if k[:4] == tag[:4] and k[4:6] == "00" and e.get("Value")}
    if creator not in reserved:
        free = next(b for b in range(0x10, 0x100) if f"{tag[:4]}00{b:02X}" not in dataset)
        reserved[creator] = f"{tag[:4]}00{free:02X}"
        dataset[reserved[creator]] = {"vr": "LO", "Value": [creator]}
    return f"{tag[:4]}{reserved[creator][6:]}{tag[6:]}"


def _read_element(node: ElementTree.Element, key: str, vr: str, depth: int
                  ) -> dict[str, Any]:
    element: dict[str, Any] = {"vr": vr}
    values: list[tuple[int, Any]] = []
    for child in node:
        kind = _name(child)
        if kind == "bulkdata":
            element["BulkDataURI"] = _attribute(child, "uri") or ""
        elif kind == "inlinebinary":
            element["InlineBinary"] = "".join((child.text or "").split())
        elif kind in ("value", "item", "personname"):
            values.append((_number(child, key), _read_value(child, kind, key, vr, depth)))
        else:
            raise XmlModelError(f"<{kind}> is not allowed in DicomAttribute {key}")
    if values:
        element["Value"] = [value for _, value in sorted(values, key=lambda v: v[0])]
    return element


def _number(node: ElementTree.Element, key: str) -> int:
    text = _attribute(node, "number") or ""
    number = ascii_int(text)
    if number is None or number < 1:
        raise XmlModelError(f"a value of {key} has number {text[:20]!r}; values are numbered "
                            "from 1")
    return number


def _read_value(node: ElementTree.Element, kind: str, key: str, vr: str, depth: int) -> Any:
    if kind == "item":
        return _read_dataset(node, depth + 1)
    if kind == "personname":
        return _person_name_json(node, key) if len(node) else None
    text = node.text or ""
    if not text:
        return None  # an empty value: JSON null (PS3.18 F.2.5)
    if vr not in NUMBER_VRS:
        return text
    try:
        return int(text) if vr in _INTEGER_VRS else float(text)
    except ValueError as exc:
        raise XmlModelError(f"{key} ({vr}) has the value {text!r}, which is not a "
                            "number") from exc


def _person_name_json(node: ElementTree.Element, key: str) -> dict[str, str]:
    groups: dict[str, str] = {}
    for group in node:
        name = _PN_GROUPS.get(_name(group))
        if name is None:
            raise XmlModelError(f"<{_name(group)}> is not a person name group in {key}")
        parts = {_name(part): part.text or "" for part in group}
        components = [parts.get(c.lower(), "") for c in _PN_COMPONENTS]
        groups[name] = "^".join(components).rstrip("^")
    return groups
