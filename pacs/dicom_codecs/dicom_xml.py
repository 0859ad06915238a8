"""DICOM JSON model (PS3.18 Annex F) → Native DICOM Model XML (PS3.19 A.1)."""

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pydicom.datadict import keyword_for_tag

# Private attributes we emit, with the creator their block is reserved for.
PRIVATE_KEYWORDS = {0x00091097: "FailureDetail"}
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def to_native_xml(dataset: dict[str, Any]) -> bytes:
    """Serialize one DICOM JSON dataset as `<NativeDicomModel>` (the shape Google returns)."""
    parts: list[str] = ["<NativeDicomModel>"]
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
                     f' privateCreator={quoteattr(creator)}')
        if keyword:
            attrs += f' keyword="{keyword}"'
        out.append(f"<DicomAttribute {attrs}>")
        _values(element, out)
        out.append("</DicomAttribute>")


def _values(element: dict[str, Any], out: list[str]) -> None:
    if "BulkDataURI" in element:
        out.append(f"<BulkData URI={quoteattr(element['BulkDataURI'])}/>")
    elif "InlineBinary" in element:
        out.append(f"<InlineBinary>{element['InlineBinary']}</InlineBinary>")
    for number, value in enumerate(element.get("Value", []), start=1):
        if element["vr"] == "SQ":
            out.append(f'<Item number="{number}">')
            _dataset(value, out)
            out.append("</Item>")
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
