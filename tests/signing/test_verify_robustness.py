"""verify_pdf never raises: random damage to a signed agreement always yields a report."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signing import PlatformPKI, exit_code, verify_pdf
from signing import verify_texts as T

_FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=3)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    print_blob=False,
)
@given(cut=st.floats(min_value=0.0, max_value=1.0), flips=_FLIPS)
def test_damaged_files_always_give_a_report(
    completed: bytes, pki: PlatformPKI, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(completed[: max(1, int(len(completed) * cut))])
    for where, value in flips:
        data[min(len(data) - 1, int(len(data) * where))] = value
    report = verify_pdf(bytes(data), [pki.root_cert], crls=pki.all_crls_der())
    assert exit_code(report) in (0, 1, 2)
    assert report.to_dict()["sha256"] == report.sha256


def test_truncated_inside_a_later_revision_is_flagged(stages: dict[str, bytes], pki: PlatformPKI) -> None:
    # the student-signed revision plus the start of the school's update: a partial download/splice
    student = stages["student"]
    partial = stages["school"][: len(student) + 200]
    report = verify_pdf(partial, [pki.root_cert], crls=pki.all_crls_der())
    assert exit_code(report) == 1
    assert T.TRAILING_DATA[1] in report.reason_en
    # cut exactly at a revision boundary: that earlier version is genuine and verifies
    assert verify_pdf(student, [pki.root_cert], crls=pki.all_crls_der()).ok
