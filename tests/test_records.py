"""CSV schemas: streaming writers and validating readers agree; bad files get one clear line."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from facemap.errors import InputFileError
from facemap.io.logwriter import FrameLogs
from facemap.io.records import read_landmarks, read_meta, read_raw
from facemap.io.schema import LANDMARK_COLUMNS, META_COLUMNS, RAW_COLUMNS, SUMMARY_COLUMNS, log_path
from facemap.types import BBox, Face, Pose, Status


def _result(frame: int, face: bool = True) -> Face:
    if not face:
        return Face.empty(frame, timestamp_ms=frame * 33.3, reason="no_bbox")
    rng = np.random.default_rng(frame)
    return Face(
        frame=frame,
        timestamp_ms=frame * 33.3,
        status=Status.OK,
        reason="detected",
        box=BBox(10, 20, 110, 130),
        landmarks=rng.uniform(0, 500, (68, 2)),
        pose=Pose(1.5, -2.25, 3.0),
        params=rng.uniform(-1, 1, 265),
    )


def test_headers_keep_original_columns_first():
    assert META_COLUMNS[:7] == ["frame", "status", "reason", "x0", "y0", "x1", "y1"]
    assert SUMMARY_COLUMNS[:4] == ["frame", "min", "max", "shape0"]
    assert RAW_COLUMNS[0] == "frame" and RAW_COLUMNS[-1] == "p264" and len(RAW_COLUMNS) == 266
    assert LANDMARK_COLUMNS[:3] == ["frame", "x0", "y0"] and LANDMARK_COLUMNS[-2:] == ["y67", "timestamp_ms"]


def test_write_then_read_round_trip(tmp_path):
    results = [_result(1), _result(2, face=False), _result(3)]
    with FrameLogs(tmp_path, "clip", raw=True, landmarks=True) as logs:
        for r in results:
            logs.write(r)
    meta = read_meta(log_path(tmp_path, "clip", "meta"))
    lm = read_landmarks(log_path(tmp_path, "clip", "landmarks"))
    raw = read_raw(log_path(tmp_path, "clip", "raw"))
    assert meta.frames.tolist() == [1, 2, 3]
    assert meta.status.tolist() == ["ok", "no_face", "ok"]
    assert np.isnan(meta.boxes[1]).all() and meta.boxes[0].tolist() == [10, 20, 110, 130]
    np.testing.assert_allclose(meta.pose_deg[0], [1.5, -2.25, 3.0])
    np.testing.assert_allclose(meta.timestamps_ms, [33.3, 66.6, 99.9])
    assert lm.frames.tolist() == [1, 3]
    np.testing.assert_allclose(lm.landmarks[1], results[2].landmarks, atol=5e-4)
    np.testing.assert_allclose(raw.params[0], results[0].params, rtol=1e-6, atol=1e-7)
    with open(log_path(tmp_path, "clip", "summary"), newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == SUMMARY_COLUMNS
    assert rows[2] == ["2", "", "", "0", "66.600"]
    assert int(rows[1][3]) == 265
    assert not list(tmp_path.rglob("*.part"))


def test_logs_are_complete_after_an_error(tmp_path):
    with pytest.raises(RuntimeError), FrameLogs(tmp_path, "x", landmarks=True) as logs:
        logs.write(_result(1))
        raise RuntimeError("boom")
    assert read_landmarks(log_path(tmp_path, "x", "landmarks")).frames.tolist() == [1]


def test_reads_the_original_layout(shared_data):
    lm = read_landmarks(shared_data / "ref" / "lp_d19_dlib_landmarks.csv")
    meta = read_meta(shared_data / "ref" / "lp_d19_dlib_meta.csv")
    assert lm.landmarks.shape == (250, 68, 2) and lm.timestamps_ms is None
    assert meta.frames[0] == 1 and meta.status[0] == "ok" and meta.pose_deg is None
    assert meta.boxes[0].tolist() == [108, 165, 366, 423]


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("frame,x0,y0\n", "lacks column"),
        (",".join(LANDMARK_COLUMNS[:-1]) + "\n", "has a header but no rows"),
        (",".join(LANDMARK_COLUMNS[:-1]) + "\n1," + ",".join(["abc"] + ["1"] * 135) + "\n", "row 2 column x0 is not a number"),
    ],
)
def test_bad_landmark_files(tmp_path, text, message):
    with pytest.raises(InputFileError, match=message) as exc:
        read_landmarks(_write(tmp_path / "l.csv", text))
    assert "l.csv" in str(exc.value)


def test_duplicated_unsorted_frames_and_blank_lines(tmp_path):
    header = ",".join(LANDMARK_COLUMNS[:-1])
    row = lambda f, v: f"{f}," + ",".join([str(v)] * 136)  # noqa: E731
    text = "\n".join([header, row(3, 3), "", row(1, 1), row(3, 9), row(2, 2)]) + "\n"
    lm = read_landmarks(_write(tmp_path / "l.csv", text))
    assert lm.frames.tolist() == [1, 2, 3]
    assert lm.landmarks[2, 0, 0] == 3  # first row of the duplicated frame kept


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_meta(tmp_path / "none.csv")
    with pytest.raises(InputFileError, match="is a folder"):
        read_meta(tmp_path)


@pytest.mark.parametrize("frame", ["1e300", "-4"])
def test_frame_numbers_out_of_range(tmp_path, frame):
    header = ",".join(LANDMARK_COLUMNS[:-1])
    path = _write(tmp_path / "l.csv", f"{header}\n{frame}," + ",".join(["1"] * 136) + "\n")
    with pytest.raises(InputFileError, match="frame numbers count from 1"):
        read_landmarks(path)


def test_a_lenient_read_of_a_several_faces_log_keeps_every_face(tmp_path):
    """Without ``strict`` a duplicated frame row is dropped (logged); in a log with face_id a
    frame's rows are one per face, so only a repeated (frame, face_id) is (before: every face
    after the first of a frame was dropped as a "duplicated frame")."""
    from facemap.io.records import read_meta

    path = tmp_path / "m.csv"
    path.write_text("frame,face_id,status,reason,x0,y0,x1,y1\n1,0,ok,d,1,1,5,5\n1,1,ok,d,9,9,15,15\n"
                    "2,1,ok,d,9,9,15,15\n2,0,ok,d,1,1,5,5\n2,1,ok,d,8,8,15,15\n3,,no_face,x,,,,\n")
    log = read_meta(path)
    assert log.frames.tolist() == [1, 1, 2, 2, 3] and log.face_ids.tolist() == [0, 1, 0, 1, -1]
    assert log.boxes[3].tolist() == [9, 9, 15, 15]  # the first of the repeated (2, 1)


# ----------------------------------------------------------------------------- a picture's JSON


def _picture(tmp_path, doc: object, name: str = "face.json"):
    import json

    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_a_pictures_json_reads_as_a_one_frame_landmarks_log(tmp_path):
    pts = np.arange(136, dtype=float).reshape(68, 2) + 0.5
    lg = read_landmarks(_picture(tmp_path, {"image": "face.jpg", "landmarks": pts.tolist()}))
    assert lg.frames.tolist() == [1] and lg.timestamps_ms is None and not lg.has_face_id
    np.testing.assert_array_equal(lg.landmarks[0], pts)
    assert lg.face_ids.tolist() == [0]
    # --max-faces other than 1: the faces list, each with its id (a face without points left out)
    doc = {"image": "g.jpg", "landmarks": pts.tolist(),
           "faces": [{"face_id": 3, "landmarks": (pts + 1).tolist()}, {"face_id": 5, "landmarks": []},
                     {"face_id": 7, "landmarks": pts.tolist()}]}
    lg = read_landmarks(_picture(tmp_path, doc, "g.json"))
    assert lg.has_face_id and lg.face_ids.tolist() == [3, 7] and lg.frames.tolist() == [1, 1]
    np.testing.assert_array_equal(lg.landmarks[0], pts + 1)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([1, 2], "is not a picture JSON infer.py wrote"),
        ({"image": "x.jpg"}, "is not a picture JSON infer.py wrote"),
        ({"image": "x.jpg", "landmarks": []}, "holds no face"),
        ({"image": "x.jpg", "landmarks": [[1, 2]] * 5}, "are not 68 (x, y) points"),
        ({"image": "x.jpg", "landmarks": [["a", 2]] * 68}, "are not 68 (x, y) points"),
        ({"faces": [{"face_id": -2, "landmarks": [[1, 2]] * 68}], "landmarks": []}, "face_id is -2"),
    ],
)
def test_a_bad_picture_json_is_one_line_naming_the_file(tmp_path, doc, says):
    path = _picture(tmp_path, doc)
    with pytest.raises(InputFileError) as exc:
        read_landmarks(path)
    assert str(path) in str(exc.value) and says in str(exc.value)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputFileError, match="is not a picture JSON"):
        read_landmarks(tmp_path / "broken.json")
