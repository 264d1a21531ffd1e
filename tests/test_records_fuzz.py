"""Fuzzing the CSV readers: any text gives a valid log or one InputFileError, never a crash."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facemap.errors import InputFileError
from facemap.io.records import read_landmarks, read_meta, read_raw
from facemap.io.schema import LANDMARK_COLUMNS, META_COLUMNS

cell = st.one_of(
    st.integers(-5, 5000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NaN", "abc", " 3 ", "1e400", "ok", "no_face", '"', '"a,b"', "\t"]),
    st.text(max_size=4),
)
header = st.one_of(
    st.just(LANDMARK_COLUMNS),
    st.just(LANDMARK_COLUMNS[:-1]),
    st.just(META_COLUMNS),
    st.just(META_COLUMNS[:7]),
    st.lists(st.sampled_from(["frame", "x0", "y0", "status", "p0", "junk"]), max_size=6),
)


@st.composite
def csv_text(draw):
    cols = draw(header)
    n = draw(st.integers(0, 4))
    lines = [",".join(cols)] if draw(st.booleans()) or not cols else []
    for _ in range(n):
        k = len(cols) + draw(st.integers(-2, 2))
        row = [draw(cell) for _ in range(max(k, 0))]
        if cols and cols[0] == "frame" and row and draw(st.booleans()):
            row[0] = str(draw(st.integers(1, 5)))
        lines.append(",".join(row))
        if draw(st.booleans()):
            lines.append("")
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_text())
def test_readers_never_crash(tmp_path, text):
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for reader in (read_landmarks, read_meta, read_raw):
        try:
            log = reader(path)
        except InputFileError as exc:
            msg = str(exc)
            assert "fuzz.csv" in msg and "\n" not in msg
            continue
        frames = log.frames
        assert frames.ndim == 1 and len(frames) > 0
        assert (np.diff(frames) > 0).all()  # sorted, unique
        if reader is read_landmarks:
            assert log.landmarks.shape == (len(frames), 68, 2)
        if reader is read_meta:
            assert log.boxes.shape == (len(frames), 4)


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(bytes(range(256)) * 4)
    for reader in (read_landmarks, read_meta, read_raw):
        try:
            reader(path)
        except InputFileError as exc:
            assert "noise.csv" in str(exc)
