"""The fast DICOM JSON of raw elements equals pydicom's, element by element, over every file
pydicom ships (nested sequences included)."""

from collections import Counter

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement

from pacs.dicom.ingest import _raw_vr
from pacs.dicom.json_values import ENCODINGS, raw_json

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _compare(ds: pydicom.Dataset, charset: str, seen: Counter[str]) -> None:
    if 0x00080005 in ds:
        own = ds.SpecificCharacterSet
        charset = own if isinstance(own, str) else "\\".join(own)
    encoding = ENCODINGS.get(charset.strip())
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if encoding and isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            vr = _raw_vr(raw, ds)
            fast = raw_json(vr, raw.value, encoding, raw.is_little_endian)
            if fast is not None:
                assert fast == ds[tag].to_json_dict(None, 2**32), (tag, vr)
                seen[vr] += 1
        element = ds[tag]
        if element.VR == "SQ":
            for item in element.value:
                _compare(item, charset, seen)


def test_fast_json_equals_pydicom_over_its_test_files() -> None:
    seen: Counter[str] = Counter()
    for path in get_testdata_files():
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        except Exception:  # not a dataset (DICOMDIR helpers, JSON, dumps)
            continue
        _compare(ds, "", seen)
    # Every value representation the fast path claims was exercised, many times over.
    for vr in ("AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "SH", "SL", "SS",
               "ST", "TM", "UI", "UL", "US", "UT"):
        assert seen[vr] >= 4, vr
