"""The codec registry reports which libraries each transfer syntax needs, and whether they
are installed (as pydicom's `missing_dependencies` does)."""

from pacs.dicom.transfer_syntaxes import DEFLATED_IMAGE_FRAME, FRAME_SYNTAXES, TRANSFER_SYNTAXES
from pacs.pixels.codecs import BACKENDS, CODECS, missing_backends


def test_every_compressed_codec_names_known_libraries() -> None:
    for uid, codec in CODECS.items():
        assert set(codec.needs) <= set(BACKENDS), uid
        syntax = TRANSFER_SYNTAXES.get(uid)
        if syntax is not None and syntax.encapsulated and uid != DEFLATED_IMAGE_FRAME:  # zlib
            assert codec.needs, f"{syntax.name} names no library"


def test_every_served_frame_syntax_has_a_codec_with_its_libraries_installed() -> None:
    served = {uid for syntaxes in FRAME_SYNTAXES.values() for uid in syntaxes}
    assert served <= set(CODECS)
    assert missing_backends() == {}
