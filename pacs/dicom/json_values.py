"""DICOM JSON (PS3.18 F.2) of common raw elements, straight from their bytes.

Ingest turns every header element into JSON; converting through pydicom's DataElement costs
most of a Store's CPU. For the value representations below, in single-byte or UTF-8 character
sets, the JSON is built here from the raw bytes, with pydicom's exact results (a test compares
the two over pydicom's own test files). Anything else returns None and takes pydicom's path.
"""

import struct
from typing import Any

# Sequences nested deeper are refused, in Part 10 and in XML or JSON metadata alike: their
# DICOM JSON would pass the 255 levels a JSON encoder takes (each level is an element object,
# its Value array and an item).
MAX_SEQUENCE_DEPTH = 50


def sequence_depth(dataset: Any) -> int:
    """How deep sequences nest in a DICOM JSON dataset (0: not at all), walked without
    recursion, so that no depth a client sends can exhaust the stack; it stops counting past
    MAX_SEQUENCE_DEPTH + 1."""
    deepest, stack = 0, [(dataset, 0)]
    while stack and deepest <= MAX_SEQUENCE_DEPTH:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for element in node.values() if isinstance(node, dict) else ():
            if isinstance(element, dict) and element.get("vr") == "SQ" \
                    and isinstance(element.get("Value"), list):
                stack.extend((item, depth + 1) for item in element["Value"])
    return deepest

# Specific Character Set (0008,0005) → Python codec, for the sets handled here (PS3.3 C.12.1.1.2).
ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1",
             "ISO_IR 192": "UTF8"}
_SPLIT_STRIPPED = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # multi_string
_SPLIT_TEXT = frozenset({"SH", "LO", "UC"})  # convert_text: each value right-stripped
_SINGLE_TEXT = frozenset({"LT", "ST", "UT"})  # convert_single_string
_NUMERIC_TEXT = {"IS": int, "DS": float}
_TEXT_VRS = _SPLIT_STRIPPED | _SPLIT_TEXT | _SINGLE_TEXT | _NUMERIC_TEXT.keys()
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q",
           "UV": "Q"}


def raw_json(vr: str, value: bytes, encoding: str, little_endian: bool) -> dict[str, Any] | None:
    """The DICOM JSON of a raw value, or None when pydicom must convert it."""
    if vr in _BINARY:
        return _binary(vr, value, little_endian)
    if vr not in _TEXT_VRS:
        return None
    text = value.decode(encoding if vr in _SPLIT_TEXT | _SINGLE_TEXT else "iso8859")
    if vr in _NUMERIC_TEXT:
        return _numbers(vr, text)
    if vr in _SPLIT_STRIPPED:
        values: list[Any] = text.rstrip(" \x00").split("\\")
    elif vr in _SPLIT_TEXT:
        values = [v.rstrip("\x00 ") for v in text.split("\\")]
    else:
        values = [text.rstrip("\x00 ")]
    if values == [""]:
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _binary(vr: str, value: bytes, little_endian: bool) -> dict[str, Any] | None:
    code = _BINARY[vr]
    size = struct.calcsize("<" + code)
    if len(value) % size:
        return None
    count = len(value) // size
    if not count:
        return {"vr": vr}
    numbers = struct.unpack(f"{'<' if little_endian else '>'}{count}{code}", value)
    return {"vr": vr, "Value": list(numbers)}


def _numbers(vr: str, text: str) -> dict[str, Any] | None:
    items = text.strip(" \x00").split("\\")
    if items == [""]:
        return {"vr": vr}
    convert = _NUMERIC_TEXT[vr]
    try:
        return {"vr": vr, "Value": [convert(item.strip()) for item in items]}
    except ValueError:
        return None
