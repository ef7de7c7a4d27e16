from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import airflow_provider_aisearch.models.timestamps as timestamps_module
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.jobs import (
    DEFAULT_END_REASON_POLICY,
    EndReasonPolicy,
    Job,
    JobLog,
    JobStatus,
    MalformedJobError,
    parse_timestamp,
)

ENDED = datetime(2026, 7, 16, 19, 29, 59, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("ended_at", "end_reason", "status"),
    [
        (None, None, JobStatus.RUNNING),
        (None, "", JobStatus.RUNNING),
        # An ended job may leave out ended_at (optional in Cloudflare's schema): end_reason tells.
        (None, "completed", JobStatus.SUCCEEDED),
        (None, "new_job_has_started", JobStatus.SUPERSEDED),
        (ENDED, None, JobStatus.SUCCEEDED),
        (ENDED, "", JobStatus.SUCCEEDED),
        (ENDED, "completed", JobStatus.SUCCEEDED),
        (ENDED, "job_completed", JobStatus.SUCCEEDED),
        (ENDED, "done", JobStatus.SUCCEEDED),
        (ENDED, "finished", JobStatus.SUCCEEDED),
        (ENDED, "success", JobStatus.SUCCEEDED),
        (ENDED, "Succeeded", JobStatus.SUCCEEDED),
        (ENDED, " COMPLETED ", JobStatus.SUCCEEDED),
        (ENDED, "new_job_has_started", JobStatus.SUPERSEDED),
        (ENDED, "cancelled", JobStatus.CANCELLED),
        (ENDED, "canceled_by_user", JobStatus.CANCELLED),
        (ENDED, "error", JobStatus.FAILED),
        (ENDED, "failed", JobStatus.FAILED),
        (ENDED, "indexing_error: source unreachable", JobStatus.FAILED),
        (ENDED, "timeout", JobStatus.FAILED),
        (ENDED, "something_unexpected", JobStatus.FAILED),
    ],
)
def test_default_classification(ended_at: datetime | None, end_reason: str | None, status: JobStatus) -> None:
    assert DEFAULT_END_REASON_POLICY.classify(ended_at, end_reason) is status
    job = Job(id="j", ended_at=ended_at, end_reason=end_reason)
    assert job.status is status
    assert job.is_running is (status is JobStatus.RUNNING)


def test_explicit_sets_add_to_defaults_and_win_over_patterns() -> None:
    policy = EndReasonPolicy.build(
        success_end_reasons=["Something_Unexpected", "new_job_has_started"],
        failure_end_reasons={"completed", "partial_cancel"},
    )
    assert policy.classify(ENDED, "something_unexpected") is JobStatus.SUCCEEDED
    assert policy.classify(ENDED, "new_job_has_started") is JobStatus.SUCCEEDED
    assert policy.classify(ENDED, "COMPLETED") is JobStatus.FAILED
    assert policy.classify(ENDED, "partial_cancel") is JobStatus.FAILED
    # defaults still apply to everything else
    assert policy.classify(ENDED, "done") is JobStatus.SUCCEEDED
    assert policy.classify(ENDED, "cancelled") is JobStatus.CANCELLED
    assert policy.classify(None, None) is JobStatus.RUNNING
    assert Job(id="x", ended_at=ENDED, end_reason="something_unexpected").classify(policy) is JobStatus.SUCCEEDED


def test_reason_in_both_sets_is_an_error() -> None:
    with pytest.raises(ValueError, match="overlap.*'done'"):
        EndReasonPolicy.build(success_end_reasons=["done"], failure_end_reasons=["DONE "])


@pytest.mark.parametrize("bad", ["completed", [1], [None]])
def test_end_reason_sets_must_be_collections_of_strings(bad: object) -> None:
    with pytest.raises(ValueError, match="success_end_reasons"):
        EndReasonPolicy.build(success_end_reasons=bad)  # type: ignore[arg-type]


def test_unrecognised_end_reason_message_says_how_to_declare_success() -> None:
    job = Job(id="j1", ended_at=ENDED, end_reason="Something_Unexpected")
    text = DEFAULT_END_REASON_POLICY.explain(job)
    assert "failed" in text
    assert "not recognised" in text
    assert "success_end_reasons={'something_unexpected'}" in text
    # a known failure does not get the hint
    assert "not recognised" not in DEFAULT_END_REASON_POLICY.explain(Job(id="j2", ended_at=ENDED, end_reason="error"))


@pytest.mark.parametrize(
    "raw",
    [
        "2026-07-16 19:29:59",
        "2026-07-16T19:29:59",
        "2026-07-16T19:29:59Z",
        "2026-07-16T19:29:59+00:00",
        "2026-07-16T21:29:59+02:00",
        "2026-07-16 19:29:59.000000",
        "2026-07-16T19:29:59+0000",
        "2026-07-16 19:29:59+0000",
        "2026-07-16T21:29:59+0200",
        "2026-07-16T19:29:59.000Z",
    ],
)
def test_timestamps_in_both_formats_are_utc(raw: str) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == ENDED
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


# Shapes Python 3.10's datetime.fromisoformat rejects (it reads only what isoformat() writes:
# no "Z", no "+0000", fractions of exactly 3 or 6 digits) and 3.11+ accepts.
PY310_REJECTS = {
    "2026-07-16T19:29:59.12Z": ENDED.replace(microsecond=120000),
    "2026-07-16 19:29:59.12Z": ENDED.replace(microsecond=120000),
    "2026-07-16T19:29:59Z": ENDED,
    "2026-07-16T19:29:59+0000": ENDED,
    "2026-07-16T19:29:59.1234567Z": ENDED.replace(microsecond=123456),
}
_PY310_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(.\d{2}(:\d{2}(:\d{2}(\.\d{3}(\d{3})?)?)?)?([+-]\d{2}:\d{2})?)?")


class _Py310Datetime(datetime):
    """``datetime`` whose ``fromisoformat`` accepts only what Python 3.10's does."""

    @classmethod
    def fromisoformat(cls, date_string: str) -> datetime:  # type: ignore[override]
        if not _PY310_ISO.fullmatch(date_string):
            raise ValueError(f"Invalid isoformat string: {date_string!r}")
        return datetime.fromisoformat(date_string)


@pytest.mark.parametrize(("raw", "expected"), PY310_REJECTS.items())
def test_timestamps_parse_the_same_on_python_3_10(
    raw: str, expected: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser does not lean on fromisoformat, so what 3.11 accepts 3.10 accepts too."""
    monkeypatch.setattr(timestamps_module, "datetime", _Py310Datetime)
    assert parse_timestamp(raw, name="ended_at") == expected


def test_timestamps_from_the_api_parse_on_every_python(
    hook: AISearchHook, emulator: AISearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timestamps_module, "datetime", _Py310Datetime)
    job = {
        "id": "j1",
        "source": "user",
        "started_at": "2026-07-16T19:00:00+0000",
        "ended_at": "2026-07-16T19:29:59.12Z",
        "last_seen_at": "2026-07-16 19:29:59.12Z",
        "end_reason": "completed",
    }
    emulator.inject(Fault.http(200, {"success": True, "errors": [], "messages": [], "result": job}), method="GET")
    got = hook.get_job("docs", "j1")
    assert got.started_at == datetime(2026, 7, 16, 19, 0, 0, tzinfo=timezone.utc)
    assert got.ended_at == got.last_seen_at == ENDED.replace(microsecond=120000)
    assert [r.method for r in emulator.requests] == ["GET"]


@pytest.mark.parametrize(
    "raw", ["yesterday", "2026-13-01 00:00:00", True, float("nan"), 1e30, ["x"], "19:29:59", "P1D", "2026", "20260716x"]
)
def test_bad_timestamps_raise_malformed(raw: object) -> None:
    with pytest.raises(MalformedJobError):
        parse_timestamp(raw, name="ended_at")


def test_job_from_api_to_dict_round_trip_is_json_safe() -> None:
    raw = {
        "id": "abc",
        "source": "user",
        "description": "airflow run",
        "end_reason": None,
        "started_at": "2026-07-16 19:00:00",
        "ended_at": "2026-07-16 19:29:59",
        "last_seen_at": "2026-07-16 19:29:59",
        "unknown_extra": 1,
    }
    job = Job.from_api(raw)
    data = job.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "succeeded"
    assert data["ended_at"] == "2026-07-16T19:29:59+00:00"
    assert Job.from_dict(data) == job


@pytest.mark.parametrize("raw", [None, [], "job", {}, {"id": ""}, {"id": 5}, {"id": "a", "source": 3}])
def test_malformed_jobs_raise(raw: object) -> None:
    with pytest.raises(MalformedJobError):
        Job.from_api(raw)


def test_job_log_from_epoch_seconds() -> None:
    log = JobLog.from_api({"id": 7, "created_at": 1700000000, "message": "Starting", "message_type": 0})
    assert log.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert log.to_dict()["created_at"] == "2023-11-14T22:13:20+00:00"
    with pytest.raises(MalformedJobError):
        JobLog.from_api({"id": "7", "created_at": 1})
    odd = JobLog.from_api({"id": 7, "created_at": "yesterday"})  # kept as sent, never an error
    assert odd.created_at is None and odd.to_dict()["created_at"] == "yesterday"


@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    separator=st.sampled_from([" ", "T"]),
    digits=st.integers(min_value=0, max_value=6),
    zone=st.sampled_from(["", "Z", "+00:00", "+0000", "-05:30", "+0145", "+14:00", "-1200"]),
)
def test_the_fast_path_reads_timestamps_exactly_as_pendulum_does(
    moment: datetime, separator: str, digits: int, zone: str
) -> None:
    import pendulum

    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    text += zone
    expected = pendulum.parse(text, tz="UTC")
    assert isinstance(expected, pendulum.DateTime)
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


EPOCH_1753636065 = datetime(2025, 7, 27, 17, 7, 45, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1753636065, EPOCH_1753636065),
        ("1753636065", EPOCH_1753636065),
        (" 1753636065 ", EPOCH_1753636065),
        (1753636065.5, EPOCH_1753636065.replace(microsecond=500000)),
        ("1753636065.123456789", EPOCH_1753636065.replace(microsecond=123456)),
        (1753636065123, EPOCH_1753636065.replace(microsecond=123000)),  # milliseconds
        ("1753636065123", EPOCH_1753636065.replace(microsecond=123000)),
        # The threshold: 10**11 - 1 seconds is the year 5138; 10**11 milliseconds is March 1973.
        (10**11 - 1, datetime(5138, 11, 16, 9, 46, 39, tzinfo=timezone.utc)),
        (10**11, datetime(1973, 3, 3, 9, 46, 40, tzinfo=timezone.utc)),
        ("2025-07-27T17:07:45.123456Z", EPOCH_1753636065.replace(microsecond=123456)),
        ("2025-07-27T19:07:45.123456+02:00", EPOCH_1753636065.replace(microsecond=123456)),
        ("2025-07-27 17:07:45", EPOCH_1753636065),
        ("20250727", datetime(2025, 7, 27, tzinfo=timezone.utc)),  # 8 digits: a date, not epoch seconds
    ],
)
def test_epoch_seconds_milliseconds_and_rfc3339(raw: object, expected: datetime) -> None:
    parsed = parse_timestamp(raw, name="started_at")
    assert parsed == expected and parsed is not None and parsed.tzinfo == timezone.utc


def test_an_unreadable_timestamp_is_kept_and_the_job_ends_by_its_fields() -> None:
    running = Job.from_api({"id": "j", "source": "user", "started_at": "soon"})
    assert running.is_running and running.started_at is None
    assert running.unparsed_timestamps == {"started_at": "soon"}
    ended = Job.from_api({"id": "j", "source": "user", "ended_at": "later", "end_reason": "completed"})
    assert ended.status is JobStatus.SUCCEEDED and ended.ended_at is None
    assert Job.from_api({"id": "j", "ended_at": {"odd": 1}}).has_ended  # present: ended (end_reason absent)
    assert Job.from_dict(ended.to_dict()) == ended  # the raw value survives XCom
    assert ended.to_dict()["ended_at"] == "later"
