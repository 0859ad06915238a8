"""Many spans of one blob read in few reads (storage/spans.py): a frame's fragments and a
viewer's consecutive frames are one ranged read, on every blob store."""

import os
from pathlib import Path

import pytest

from storage.rows import Span
from storage.spans import plan, read_spans
from tests.storage.test_contracts import BLOB_FACTORIES


def test_spans_close_together_share_one_read() -> None:
    # three fragments 8 bytes apart (item headers), then one far away, given out of order
    spans = [Span(1000, 100), Span(108, 500), Span(0, 100), Span(616, 300)]
    reads = plan(spans, gap=64)
    assert [(r.offset, r.length, r.spans) for r in reads] == [(0, 916, (2, 1, 3)),
                                                              (1000, 100, (0,))]
    assert [(r.offset, r.length) for r in plan(spans, gap=8)] == [(0, 916), (1000, 100)]
    assert len(plan(spans, gap=7)) == 4  # 8 bytes apart is too far for a gap of 7
    assert plan([Span(0, 10), Span(5, 3)])[0].length == 10  # one inside another


@pytest.mark.parametrize("factory", BLOB_FACTORIES, ids=["filesystem", "s3"])
def test_each_span_comes_back_as_if_read_alone(factory: object, tmp_path: Path) -> None:
    blobs = factory(tmp_path)  # type: ignore[operator]
    data = os.urandom(300_000)
    staged = blobs.stage()
    staged.write(data)
    staged.close()
    name = blobs.commit(staged)
    spans = [Span(200_000, 1000), Span(8, 50_000), Span(0, 0), Span(50_016, 10),
             Span(299_990, 50)]  # the last runs past the end: short, as read() is
    assert read_spans(blobs, name, spans) == [
        blobs.read(name, s.offset, s.length) for s in spans]
