"""Which attributes have their own indexed column in the SQLite schema."""

from storage.query import Level

# (level, column) for attributes with their own indexed column; others match through JSON.
COLUMNS: dict[int, tuple[Level, str]] = {
    0x0020000D: (Level.STUDY, "st.study_uid"),
    0x00100010: (Level.STUDY, "st.patient_name"),
    0x00100020: (Level.STUDY, "st.patient_id"),
    0x00100030: (Level.STUDY, "st.patient_birth_date"),
    0x00100040: (Level.STUDY, "st.patient_sex"),
    0x00080020: (Level.STUDY, "st.study_date"),
    0x00080030: (Level.STUDY, "st.study_time"),
    0x00080050: (Level.STUDY, "st.accession_number"),
    0x00080090: (Level.STUDY, "st.referring_physician_name"),
    0x00200010: (Level.STUDY, "st.study_id"),
    0x00081030: (Level.STUDY, "st.study_description"),
    0x0020000E: (Level.SERIES, "se.series_uid"),
    0x00080060: (Level.SERIES, "se.modality"),
    0x00200011: (Level.SERIES, "se.series_number"),
    0x0008103E: (Level.SERIES, "se.series_description"),
    0x00080021: (Level.SERIES, "se.series_date"),
    0x00080031: (Level.SERIES, "se.series_time"),
    0x00400244: (Level.SERIES, "se.performed_start_date"),
    0x00400245: (Level.SERIES, "se.performed_start_time"),
    0x00080018: (Level.INSTANCE, "i.sop_uid"),
    0x00080016: (Level.INSTANCE, "i.sop_class_uid"),
    0x00200013: (Level.INSTANCE, "i.instance_number"),
}
def column_value(attrs: dict[str, object], tag: int) -> str | None:
    """The first value of `tag` in DICOM JSON `attrs` as text (PN: its alphabetic group)."""
    element = attrs.get(f"{tag:08X}")
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    if not isinstance(values, list) or not values:
        return None
    first = values[0]
    if isinstance(first, dict):
        first = first.get("Alphabetic")
    return None if first is None else str(first)

# Names kept case folded beside their column too, indexed, for case-insensitive matching.
FOLDED_COLUMNS: dict[int, str] = {
    0x00100010: "st.patient_name_folded",
    0x00080090: "st.referring_physician_name_folded",
}
