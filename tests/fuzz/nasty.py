"""Inputs shared by the property tests and the live attack: values clients (and attackers)
put in query strings, headers and paths, the QIDO keys they use, and a strategy for strings
over a fixed alphabet."""

from hypothesis import strategies as st

# Framing characters, other scripts' digits (int() reads '١', str.isdigit() admits '²'),
# huge numbers, control characters, bad percent-escapes, injection attempts.
NASTY = ["", " ", "*", "?", "-", "--", ",", ",,", "\\", "\\\\", "'", '"', "%", "_", "^", "=",
         "0", "-1", "1e5", "1e400", "nan", "inf", "-inf", "0x1F", "١", "²", "𝟏", "1_000",
         "99999999999999999999999", "9" * 400, "a" * 5000, "1.2.3", "1..2", "true", "TRUE",
         "all", "20240101-", "-20240101", "20240101-20231231", "20241301", "2024", "240101",
         "101500.123456", "25", "2359601", "\x00", "\x7f", "\u202e", "é", "\ud7ff", "a*b?c",
         "Doe^*", "*^*", "?*?", "00100010", "PatientName", "FFFFFFFF", "0008,0020", "1,2,3",
         "1,,2", "+1", " 1 ", "%zz", "%", "%C3%28", "%00", "<script>", "' OR 1=1 --"]
QIDO_KEYS = ["limit", "offset", "fuzzymatching", "includefield", "PatientName", "PatientID",
             "StudyDate", "StudyTime", "AcquisitionDateTime", "00100020", "0020000D",
             "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ModalitiesInStudy",
             "Modality", "NumberOfFrames", "Rows", "00280010", "InstanceNumber",
             "PatientWeight", "SliceThickness", "ReferencedSeriesSequence.SeriesInstanceUID",
             "00000000", "FFFFFFFF", "7FE00010", "SpecificCharacterSet", "access_token",
             "NoSuchKey", "", "00100010 ", "0010,0010", "AccessionNumber",
             "ReferringPhysicianName", "StudyDescription", "SOPClassUID", "SeriesNumber",
             "PatientBirthDate", "00081030", "00200032"]


def words(alphabet: str, min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Strings over `alphabet` (drawn as a list: st.text over a string alphabet can trip
    hypothesis' shrinker, which tries characters outside it)."""
    return st.lists(st.sampled_from(alphabet), min_size=min_size, max_size=max_size) \
        .map("".join)
