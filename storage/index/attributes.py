"""Which attributes belong to which level, and which are indexed columns.

Study and series attribute sets follow the Patient, General Study, Patient Study, General Series
and Frame of Reference modules (PS3.3 C.7) and the defaults of PS3.18 Tables 10.6.3-3 to -5.
"""

from storage.query import Level

STUDY_TAGS = frozenset({
    0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080051, 0x00080056, 0x00080090,
    0x00080096, 0x00080201, 0x00081030, 0x00081032, 0x00081048, 0x00081049, 0x00081060,
    0x00081062, 0x00081080, 0x00081110, 0x00100010, 0x00100020, 0x00100021, 0x00100024,
    0x00100030, 0x00100032, 0x00100040, 0x00101000, 0x00101001, 0x00101002, 0x00101010,
    0x00101020, 0x00101030, 0x00102160, 0x00104000, 0x0020000D, 0x00200010, 0x00321032,
    0x00321033, 0x00321034, 0x00401012,
})
SERIES_TAGS = frozenset({
    0x00080021, 0x00080031, 0x00080060, 0x00080070, 0x00080080, 0x00080081, 0x00081010,
    0x0008103E, 0x00081040, 0x00081050, 0x00081070, 0x00081090, 0x00081111, 0x00180015,
    0x00181030, 0x00185100, 0x0020000E, 0x00200011, 0x00200052, 0x00200060, 0x00201040,
    0x00400244, 0x00400245, 0x00400253, 0x00400254, 0x00400275,
})

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
MODALITIES_IN_STUDY = 0x00080061
SOP_CLASSES_IN_STUDY = 0x00080062


def level_of(tag: int) -> Level:
    """The level an attribute is kept at (computed study attributes count as study)."""
    if tag in STUDY_TAGS or tag in (MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY):
        return Level.STUDY
    if tag in SERIES_TAGS:
        return Level.SERIES
    return Level.INSTANCE


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
