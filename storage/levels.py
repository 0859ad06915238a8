"""Which attributes belong to which query level (PS3.4 C.6.1.1, C.6.2.1).

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

MODALITIES_IN_STUDY = 0x00080061
SOP_CLASSES_IN_STUDY = 0x00080062


def level_of(tag: int) -> Level:
    """The level an attribute is kept at (computed study attributes count as study)."""
    if tag in STUDY_TAGS or tag in (MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY):
        return Level.STUDY
    if tag in SERIES_TAGS:
        return Level.SERIES
    return Level.INSTANCE
