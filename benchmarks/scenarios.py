"""The benchmark plan: sizes and the ordered scenarios, each with its data encoded up front."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from benchmarks.dataset import CTFactory, Instance, Series
from benchmarks.dicomweb import (
    HTJ2K_LOSSLESS,
    JPEG_LOSSLESS,
    DicomWebClient,
    FrameSyntax,
    Query,
    StowRequest,
    stow_request,
)
from benchmarks.timing import Job, Result

STOW_CONCURRENCY = (1, 16, 50)
STOW_BATCH = 10
SMALL_SIDE = 64  # small STOW instances: 64x64 CT, about 9 KB each
SMALL_CONCURRENCY = 16
RETRIEVE_CONCURRENCY = (1, 4, 50)
FRAME_CONCURRENCY = (1, 16)
BURST_CONCURRENCY = 50
# Connections per target: a burst of 50 plus the search timed beside it.
CONNECTIONS = max(*STOW_CONCURRENCY, *RETRIEVE_CONCURRENCY, BURST_CONCURRENCY) + 1
SEED_BATCH = 10
SEED_CONCURRENCY = 4
QIDO_LIMIT = 100

T = TypeVar("T")


@dataclass(frozen=True)
class Size:
    """How much work each scenario does."""

    series_instances: int  # N: the seeded series that metadata, retrieve and frames read
    search_studies: int  # seeded studies sharing one PatientName (the first holds the series)
    stow_single_requests: int  # per concurrency level
    stow_batch_requests: int  # per concurrency level, STOW_BATCH instances each
    stow_small_requests: int  # single small instances at SMALL_CONCURRENCY
    query_repeats: int
    metadata_repeats: int
    retrieve_requests: tuple[int, ...]  # at each of RETRIEVE_CONCURRENCY
    frame_requests: int  # per concurrency level
    burst_frames: int  # frames asked at BURST_CONCURRENCY while a search is timed beside them
    # Transcoded or rendered frames per concurrency level once warm: 2N asks for every
    # instance twice, as viewers re-request. The cold pass asks for each instance once.
    pixel_requests: int


SIZES = {
    "smoke": Size(5, 3, 4, 2, 16, 3, 2, (1, 4, 50), 8, 400, 10),
    "full": Size(300, 10, 300, 200, 1000, 100, 20, (5, 12, 100), 500, 5000, 600),
}
PIXEL_CONCURRENCY = (1, 16)
COLD_CONCURRENCY = 16


@dataclass(frozen=True)
class Scenario:
    """Jobs to run against each target at one concurrency; `unit` names the rate reported.

    `probe`, for what not every server offers (transcoding, rendering), is an untimed first
    request: an error status there marks the scenario unsupported on that target, and skips
    it. Otherwise it warms up like `warmup`, which repeats the first job untimed.

    `burst`, when given, runs at BURST_CONCURRENCY while `jobs` are timed one at a time beside
    it, over and over, for as long as it lasts (see `timing.run_beside`)."""

    name: str
    concurrency: int
    unit: str | None
    jobs: Callable[[DicomWebClient], list[Job]]
    warmup: bool = False
    probe: Callable[[DicomWebClient], Job] | None = None
    burst: Callable[[DicomWebClient], list[Job]] | None = None


def plan(size: Size, single_part_dicom: bool, run_id: str) -> Iterator[Scenario]:
    """Yield scenarios in run order; each one's data is generated only when it is reached."""
    factory = CTFactory()
    patient = f"BENCH^RUN{run_id}"
    studies = [factory.series(size.series_instances, patient, f"BENCH-{run_id}")]
    studies += [
        factory.series(1, patient, f"BENCH-{run_id}") for _ in range(size.search_studies - 1)
    ]
    seed = [
        stow_request(s.instances[i : i + SEED_BATCH], single_part=False)
        for s in studies
        for i in range(0, len(s.instances), SEED_BATCH)
    ]
    yield Scenario("seed", SEED_CONCURRENCY, "instances", _stow_jobs(seed))

    for batch, requests in ((1, size.stow_single_requests), (STOW_BATCH, size.stow_batch_requests)):
        mode = "single" if batch == 1 else f"batch{batch}"
        for concurrency in STOW_CONCURRENCY:
            bodies = [
                stow_request(
                    factory.series(batch, f"BENCH^STOW{run_id}", f"BENCHSTOW-{run_id}").instances,
                    single_part=single_part_dicom and batch == 1,
                )
                for _ in range(requests)
            ]
            yield Scenario(
                f"stow_{mode}_c{concurrency}", concurrency, "instances", _stow_jobs(bodies)
            )
    small = CTFactory(SMALL_SIDE, SMALL_SIDE)
    bodies = [
        stow_request(
            small.series(1, f"BENCH^SMALL{run_id}", f"BENCHSMALL-{run_id}").instances,
            single_part=single_part_dicom,
        )
        for _ in range(size.stow_small_requests)
    ]
    name = f"stow_small_single_c{SMALL_CONCURRENCY}"
    yield Scenario(name, SMALL_CONCURRENCY, "instances", _stow_jobs(bodies))

    series = studies[0]
    queries = _queries(patient, series, [s.study_uid for s in studies])
    for name, query in queries.items():
        yield Scenario(
            name, 1, None, _repeat(DicomWebClient.search, query, size.query_repeats), True
        )
    metadata = _repeat(DicomWebClient.series_metadata, series, size.metadata_repeats)
    yield Scenario("metadata_series", 1, None, metadata, True)
    for concurrency, count in zip(RETRIEVE_CONCURRENCY, size.retrieve_requests, strict=True):
        retrieve = _repeat(DicomWebClient.retrieve_series, series, count)
        yield Scenario(f"retrieve_series_c{concurrency}", concurrency, "instances", retrieve, True)
    for concurrency in FRAME_CONCURRENCY:
        frames = _spread(DicomWebClient.frame, series, size.frame_requests)
        yield Scenario(f"frames_c{concurrency}", concurrency, "frames", frames, True)
    # A viewer's search while another floods the server with frames: it must not stall.
    yield Scenario(
        "qido_under_frame_burst",
        1,
        None,
        _repeat(DicomWebClient.search, queries["qido_studies_by_patient_name"], 1),
        True,
        burst=_spread(DicomWebClient.frame, series, size.burst_frames),
    )

    # Cold first: each server's first transcode or render of every instance. Its probe asks
    # for an instance of another study, so it warms code paths but no cached result.
    elsewhere = studies[1] if len(studies) > 1 else series  # both sizes have several
    # JPEG lossless last: Orthanc 1.10 (GDCM) sometimes crashes on its first one.
    for kind, request in (
        ("frames_htj2k", _transcode(HTJ2K_LOSSLESS)),
        ("rendered_jpeg", DicomWebClient.rendered_jpeg),
        ("frames_jpegll", _transcode(JPEG_LOSSLESS)),
    ):
        yield Scenario(
            f"{kind}_cold_c{COLD_CONCURRENCY}",
            COLD_CONCURRENCY,
            "frames",
            _spread(request, series, len(series.instances)),
            probe=_one(request, elsewhere, elsewhere.instances[0]),
        )
        for concurrency in PIXEL_CONCURRENCY:
            yield Scenario(
                f"{kind}_c{concurrency}",
                concurrency,
                "frames",
                _spread(request, series, size.pixel_requests),
                probe=_one(request, series, series.instances[0]),
            )


def _queries(patient: str, series: Series, study_uids: list[str]) -> dict[str, Query]:
    studies, one_study = frozenset(study_uids), frozenset([series.study_uid])
    sops = frozenset(i.sop_uid for i in series.instances)
    study_path = f"/studies/{series.study_uid}"
    return {
        "qido_studies_by_patient_name": Query(
            "/studies", {"PatientName": f"{patient}*"}, "0020000D", studies, len(studies)
        ),
        "qido_studies_by_uid": Query(
            "/studies", {"StudyInstanceUID": series.study_uid}, "0020000D", one_study, 1
        ),
        "qido_series_in_study": Query(
            f"{study_path}/series", {}, "0020000E", frozenset([series.series_uid]), 1
        ),
        "qido_instances_in_series": Query(
            f"{study_path}/series/{series.series_uid}/instances",
            {"limit": str(QIDO_LIMIT)},
            "00080018",
            sops,
            min(QIDO_LIMIT, len(sops)),
        ),
    }


def _stow_jobs(requests: list[StowRequest]) -> Callable[[DicomWebClient], list[Job]]:
    return lambda client: [partial(client.store, r) for r in requests]


def _repeat(
    method: Callable[[DicomWebClient, T], Awaitable[Result]], argument: T, count: int
) -> Callable[[DicomWebClient], list[Job]]:
    return lambda client: [partial(method, client, argument) for _ in range(count)]


# A request for frame 1 of one instance: as stored, transcoded or rendered.
FrameRequest = Callable[[DicomWebClient, Series, Instance], Awaitable[Result]]


def _transcode(syntax: FrameSyntax) -> FrameRequest:
    async def frame(client: DicomWebClient, series: Series, instance: Instance) -> Result:
        return await client.transcoded_frame(series, instance, syntax)

    return frame


def _spread(
    request: FrameRequest, series: Series, count: int
) -> Callable[[DicomWebClient], list[Job]]:
    """`count` requests for frame 1 of the instances in turn, so they spread over the whole
    series: each instance once before any twice."""
    instances = series.instances
    return lambda client: [
        partial(request, client, series, instances[i % len(instances)]) for i in range(count)
    ]


def _one(
    request: FrameRequest, series: Series, instance: Instance
) -> Callable[[DicomWebClient], Job]:
    return lambda client: partial(request, client, series, instance)
