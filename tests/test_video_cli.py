"""infer.py --video / --camera end to end: overlay video, logs, ranges, folders, jobs, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import infer
from facemap.io.records import read_landmarks, read_meta, read_raw
from tests.conftest import need_shared
from tests.standins import DATA

REPO = Path(__file__).resolve().parents[1]
D19 = DATA / "videos" / "lp_d19.mp4"
D0 = DATA / "videos" / "lp_d0.mp4"


def _stream_facts(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        n = sum(1 for _ in c.decode(vs))
        facts = {
            "frames": n,
            "duration_s": float(vs.duration * vs.time_base),
            "rate": float(vs.average_rate),
            "size": (vs.codec_context.width, vs.codec_context.height),
            "codec": vs.codec_context.name,
            "pix_fmt": vs.codec_context.pix_fmt,
            "audio": bool(c.streams.audio),
        }
        if c.streams.audio:
            a = c.streams.audio[0]
            facts["audio_s"] = float(a.duration * a.time_base)
        return facts


def _run(argv: list[str]) -> int:
    return infer.main(argv)


@pytest.fixture()
def model_args(standin_model: Path, basis_dir: Path) -> list[str]:
    return ["--model", str(standin_model), "--basis-dir", str(basis_dir)]


def test_subprocess_lp_d19_overlay_and_logs(tmp_path, model_args):
    """The way a user runs it: overlay has the source's frame count and duration, audio is
    copied, and every log has one row per frame."""
    need_shared(D19)
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "infer.py"), "--video", str(D19), *model_args, "-o", str(out),
           "--save-video", "--dump-csv", "--dump-landmarks-csv", "--hud", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lp_d19.mp4: 250 frames, face in")
    src, ovl = _stream_facts(D19), _stream_facts(out / "lp_d19_overlay.mp4")
    assert ovl["frames"] == src["frames"] == 250
    assert ovl["duration_s"] == pytest.approx(src["duration_s"], abs=0.5 / 30)
    assert ovl["size"] == src["size"] and ovl["rate"] == pytest.approx(30.0)
    assert (ovl["codec"], ovl["pix_fmt"]) == ("h264", "yuv420p")
    assert src["audio"] and ovl["audio"]
    assert ovl["audio_s"] == pytest.approx(src["duration_s"], abs=0.1)
    meta = read_meta(out / "logs" / "lp_d19_meta.csv")
    np.testing.assert_array_equal(meta.frames, np.arange(1, 251))
    np.testing.assert_allclose(meta.timestamps_ms, np.arange(250) * 1000 / 30, atol=0.01)
    assert set(meta.status) <= {"ok", "warn", "unstable", "no_face"}
    assert set(meta.reason) <= {"detected", "tracked", "jump_threshold", "no_bbox",
                                "landmarks_off_box", "detector_failed"}
    assert (meta.reason == "tracked").sum() > 0 and meta.reason[0] == "detected"
    lm = read_landmarks(out / "logs" / "lp_d19_landmarks.csv")
    raw = read_raw(out / "logs" / "lp_d19_raw.csv")
    np.testing.assert_array_equal(lm.frames, meta.frames)
    np.testing.assert_array_equal(raw.frames, meta.frames)
    summary = (out / "logs" / "lp_d19_summary.csv").read_text().splitlines()
    assert len(summary) == 251
    assert not list(out.rglob("*.part"))


def test_every_and_max_frames_divide_the_rate(tmp_path, model_args, capsys):
    need_shared(D19)
    out = tmp_path / "o"
    code = _run(["--video", str(D19), *model_args, "-o", str(out), "--every", "2",
                 "--max-frames", "20", "--save-video", "--dump-landmarks-csv", "-q"])
    assert code == 0
    meta = read_meta(out / "logs" / "lp_d19_meta.csv")
    np.testing.assert_array_equal(meta.frames, np.arange(1, 40, 2))
    ovl = _stream_facts(out / "lp_d19_overlay.mp4")
    assert ovl["frames"] == 20
    assert ovl["rate"] == pytest.approx(15.0)
    assert ovl["duration_s"] == pytest.approx(20 / 15, abs=0.5 / 15)  # playback speed kept
    assert "20 frames" in capsys.readouterr().out


def test_start_end_range(tmp_path, model_args):
    need_shared(D19)
    out = tmp_path / "o"
    assert _run(["--video", str(D19), *model_args, "-o", str(out), "--start", "2", "--end", "3",
                 "--smooth", "off", "-q"]) == 0
    meta = read_meta(out / "logs" / "lp_d19_meta.csv")
    np.testing.assert_array_equal(meta.frames, np.arange(61, 91))
    assert meta.timestamps_ms[0] == pytest.approx(2000.0, abs=0.1)


def test_folder_with_clashing_stems_and_summary(tmp_path, model_args, capsys):
    need_shared(D0)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "clip.mp4").symlink_to(D0)
    (tmp_path / "b" / "clip.mov").symlink_to(D0)
    out = tmp_path / "o"
    code = _run(["--video", str(tmp_path / "a"), str(tmp_path / "b" / "*"), *model_args,
                 "-o", str(out), "--max-frames", "5", "-q"])
    assert code == 0
    metas = sorted(p.name for p in (out / "logs").glob("*_meta.csv"))
    assert len(metas) == 3 and len(set(metas)) == 3
    text = capsys.readouterr().out
    assert "3 video(s), 15 frames" in text
    assert text.count("clip.mp4:") == 2 and "clip.mov:" in text


def test_jobs_in_processes_same_logs_as_serial(tmp_path, model_args):
    need_shared(D0)
    vids = tmp_path / "v"
    vids.mkdir()
    for name in ("one.mp4", "two.mp4"):
        (vids / name).symlink_to(D0)
    logs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"o{jobs}"
        assert _run(["--video", str(vids), *model_args, "-o", str(out), "--max-frames", "8",
                     "--jobs", jobs, "-q"]) == 0
        logs[jobs] = {p.name: p.read_text() for p in (out / "logs").glob("*.csv")}
    assert sorted(logs["1"]) == sorted(logs["2"]) and len(logs["1"]) == 4
    assert logs["1"] == logs["2"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_folder_with_one_truncated_video_does_the_others_and_exits_3(tmp_path, model_args, capsys, jobs):
    """Issue 23: as with --ray, the good videos are done, the bad one is a failed row of
    corpus.csv with its reason, and the exit code (3) says some failed."""
    import csv
    import shutil

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("lp_d19.mp4", "dagan_driving.mp4"):
        shutil.copyfile(need_shared(DATA / "videos" / name), corpus / name)
    data = need_shared(DATA / "videos" / "lp_d18.mp4").read_bytes()
    (corpus / "broken.mp4").write_bytes(data[: len(data) // 2])  # a copy cut short: no MP4 index
    out = tmp_path / "out"
    args = [*model_args, "--max-frames", "10", "--dump-landmarks-csv", "--jobs", jobs, "-q"]
    code = _run(["--video", str(corpus), *args, "-o", str(out)])
    printed, err = capsys.readouterr()
    assert code == 3
    assert err.strip().splitlines() == [
        f"infer.py: error: 1 of 3 video(s) failed: broken.mp4 (the error of each is in {out / 'corpus.csv'}); "
        "the others are done"
    ]
    said = [ln for ln in printed.splitlines() if ln.startswith("broken.mp4: failed: ")]
    assert len(said) == 1 and f"{corpus / 'broken.mp4'}: not a readable video" in said[0]
    with open(out / "corpus.csv", newline="") as fh:
        rows = {r["stem"]: r for r in csv.DictReader(fh)}
    assert {k: r["status"] for k, r in rows.items()} == {"broken": "failed", "dagan_driving": "ok", "lp_d19": "ok"}
    assert rows["broken"]["error"] == said[0].removeprefix("broken.mp4: failed: ")
    assert rows["broken"]["frames"] == "" and rows["broken"]["video"] == str(corpus / "broken.mp4")
    assert rows["broken"]["video_bytes"] == str(len(data) // 2)
    assert rows["lp_d19"]["frames"] == rows["dagan_driving"]["frames"] == "10"
    assert not list((out / "logs").glob("broken_*"))
    assert "broken" not in (out / ".facemap-output").read_text()
    # the good videos' logs are those of a run without the bad one
    (tmp_path / "good").mkdir()
    for name in ("lp_d19.mp4", "dagan_driving.mp4"):
        (tmp_path / "good" / name).symlink_to(corpus / name)
    assert _run(["--video", str(tmp_path / "good"), *args, "-o", str(tmp_path / "alone")]) == 0
    alone = {p.name: p.read_bytes() for p in (tmp_path / "alone" / "logs").iterdir()}
    assert {p.name: p.read_bytes() for p in (out / "logs").iterdir()} == alone and len(alone) == 8  # 3 logs + run.json each


def test_no_face_video_skip(tmp_path, model_args):
    import av

    path = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        for i in range(6):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 40, (64, 96, 3), dtype=np.uint8), format="bgr24")
            f.pts = i
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    out = tmp_path / "o"
    assert _run(["--video", str(path), *model_args, "-o", str(out), "--skip-if-no-face",
                 "--dump-landmarks-csv", "--save-video", "-q"]) == 0
    meta = read_meta(out / "logs" / "noise_meta.csv")
    assert list(meta.status) == ["no_face"] * 6 and list(meta.reason) == ["detector_failed"] * 6
    assert (out / "logs" / "noise_landmarks.csv").read_text().count("\n") == 1  # header only
    assert _stream_facts(out / "noise_overlay.mp4")["frames"] == 6


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--every", "0"], 2, "--every must be >= 1"),
        (["--start", "3", "--end", "2"], 2, "--end"),
        (["--smooth-beta", "-1"], 2, "--smooth-beta"),
        (["--jump-threshold", "-1"], 2, "--jump-threshold"),
        (["--max-frames", "0"], 2, "--max-frames"),
        (["--jobs", "0"], 2, "--jobs must be >= 1, got 0"),
        (["--start", "100"], 3, "no frames in the chosen range"),
    ],
)
def test_video_usage_errors(tmp_path, model_args, capsys, extra, code, message):
    need_shared(D0)
    assert _run(["--video", str(D0), *model_args, "-o", str(tmp_path / "o"), "-q", *extra]) == code
    assert message in capsys.readouterr().err


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, model_args, capfd):
    """Redirected stderr (a log file, CI) gets the summary lines, not the progress bar's redraws."""
    need_shared(D0)
    assert _run(["--video", str(D0), *model_args, "-o", str(tmp_path / "o"), "--max-frames", "5"]) == 0
    out, err = capfd.readouterr()
    assert "lp_d0.mp4: 5 frames" in out
    assert "frame/s" not in err and "\r" not in err


def test_missing_video(tmp_path, model_args, capsys):
    assert _run(["--video", str(tmp_path / "nope.mp4"), *model_args, "-o", str(tmp_path / "o")]) == 3
    assert "nope.mp4: video not found" in capsys.readouterr().err


def test_camera_without_display_is_a_clear_error(tmp_path, model_args, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    assert _run(["--camera", "0", *model_args, "-o", str(tmp_path / "o")]) == 2
    assert "--no-preview" in capsys.readouterr().err


def test_camera_missing_headless(tmp_path, model_args, capfd):
    if os.path.exists("/dev/video9"):
        pytest.skip("a camera 9 exists here")
    assert _run(["--camera", "9", "--no-preview", *model_args, "-o", str(tmp_path / "o"), "-q"]) == 3
    err = capfd.readouterr().err  # file descriptor 2: OpenCV's own warnings would land there
    assert "camera 9: cannot open it" in err
    assert len(err.strip().splitlines()) == 1, err


class _FakeCapture:
    """Stands in for cv2.VideoCapture: serves lp_d0's frames, then stops."""

    released = False

    def __init__(self, index):
        from facemap.io.video import read_frames

        self.frames = [f.image for f in read_frames(D0, max_frames=12)]

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        _FakeCapture.released = True


def test_camera_headless_with_recording(tmp_path, model_args, capsys, monkeypatch):
    import cv2

    need_shared(D0)
    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    out = tmp_path / "o"
    assert _run(["--camera", "0", "--no-preview", "--save-video", "--dump-landmarks-csv",
                 *model_args, "-o", str(out), "-q"]) == 0
    assert _FakeCapture.released
    meta = read_meta(out / "logs" / "camera0_meta.csv")
    np.testing.assert_array_equal(meta.frames, np.arange(1, 13))
    assert np.all(np.diff(meta.timestamps_ms) >= 0)
    assert _stream_facts(out / "camera0_overlay.mp4")["frames"] == 12
    assert "camera0" not in capsys.readouterr().err


def test_interrupt_keeps_logs_and_a_playable_overlay(tmp_path, standin_model, basis_dir):
    """Ctrl-C mid-video: the logs so far are renamed into place and the overlay plays."""
    need_shared(D19)
    import facemap
    from facemap.backends import HaarDetector
    from facemap.sinks import CsvLogSink, VideoOverlaySink

    class Interrupting:
        name = "interrupting"

        def landmark(self, image, faces, frame=1, timestamp_ms=0.0):
            if frame == 6:
                raise KeyboardInterrupt
            from tests.video_fakes import RefLandmarker

            self.inner = getattr(self, "inner", None) or RefLandmarker("lp_d19")
            return self.inner.landmark(image, faces, frame, timestamp_ms)

    fm = facemap.open(Interrupting(), detector=HaarDetector())
    sinks = [CsvLogSink(tmp_path, "lp_d19", landmarks=True), VideoOverlaySink(tmp_path / "lp_d19_overlay.mp4")]
    with pytest.raises(KeyboardInterrupt):
        for _ in fm.process(D19, sinks=sinks):
            pass
    meta = read_meta(tmp_path / "logs" / "lp_d19_meta.csv")
    np.testing.assert_array_equal(meta.frames, [1, 2, 3, 4, 5])
    import av

    with av.open(str(tmp_path / "lp_d19_overlay.mp4")) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == 5  # every processed frame, and the file is complete
    assert not list(tmp_path.rglob("*.part"))


def _vfr_clip(path: Path) -> Path:
    """8 s of H.264 with a variable frame rate: 2 s at 30 fps, 4 s at 5 fps, 2 s at 30 fps (140
    frames), a keyframe every 10 frames, as phone clips have."""
    from fractions import Fraction

    import av

    times = [i / 30 for i in range(60)] + [2 + i / 5 for i in range(20)] + [6 + i / 30 for i in range(60)]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30, options={"g": "10", "keyint_min": "10", "sc_threshold": "0"})
        vs.width, vs.height, vs.pix_fmt = 128, 96, "yuv420p"
        vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            img = np.zeros((96, 128, 3), np.uint8)
            img[:, : i % 128] = 200
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


@pytest.mark.parametrize("start", [1.0, 6.5])
def test_start_on_a_variable_frame_rate_clip_keeps_the_frame_numbers(tmp_path, model_args, capsys, start):
    """--start on a variable-frame-rate clip: every frame logs the number it has in the whole
    file, and a complete file is not reported as truncated."""
    clip = _vfr_clip(tmp_path / "vfr.mp4")
    common = ["--video", str(clip), *model_args, "--detector", "haar", "--skip-if-no-face"]
    assert _run([*common, "-o", str(tmp_path / "all")]) == 0
    capsys.readouterr()
    assert _run([*common, "--start", str(start), "-o", str(tmp_path / "part")]) == 0
    printed = capsys.readouterr().out
    whole = read_meta(tmp_path / "all" / "logs" / "vfr_meta.csv")
    part = read_meta(tmp_path / "part" / "logs" / "vfr_meta.csv")
    by_time = dict(zip(np.round(whole.timestamps_ms).astype(int), whole.frames, strict=True))
    assert [by_time[int(round(t))] for t in part.timestamps_ms] == part.frames.tolist()
    assert part.frames[0] == (31 if start == 1.0 else 96) and part.frames[-1] == 140
    assert "ended early" not in printed


# every codec the README lists as copied into the overlay, with the encoder that makes it here
AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "ac3": "ac3", "eac3": "eac3", "opus": "libopus",
                  "alac": "alac", "flac": "flac"}


def _clip_with_audio(path: Path, encoder: str) -> Path:
    """2 s of 64x48 video at 10 fps and a 48 kHz mono tone encoded with ``encoder``, in MP4."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aud = out.add_stream(encoder, rate=48000)
        aud.layout = "mono"
        fmt = aud.codec_context.codec.audio_formats[0].name
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        n = aud.codec_context.frame_size or 1024
        tone = np.sin(np.arange(96000) / 8.0)
        for start in range(0, 96000 - n, n):
            chunk = tone[start : start + n] * 0.3
            if fmt.startswith("s16"):
                data = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                data = (chunk * 2**31 * 0.99).astype(np.int32)
            else:
                data = chunk.astype(np.float32)
            af = av.AudioFrame.from_ndarray(data[None], format=fmt, layout="mono")
            af.sample_rate, af.pts = 48000, start
            for p in aud.encode(af):
                out.mux(p)
        for p in aud.encode(None):
            out.mux(p)
    return path


@pytest.mark.parametrize("codec", sorted(AUDIO_ENCODERS))
def test_every_listed_audio_codec_is_copied_into_the_overlay(tmp_path, model_args, codec):
    import av

    clip = _clip_with_audio(tmp_path / f"tone_{codec}.mp4", AUDIO_ENCODERS[codec])
    with av.open(str(clip)) as c:
        assert c.streams.audio[0].codec_context.codec.canonical_name == codec
    out = tmp_path / "out"
    assert _run(["--video", str(clip), *model_args, "--detector", "haar", "--save-video", "-o", str(out), "-q"]) == 0
    facts = _stream_facts(out / f"tone_{codec}_overlay.mp4")
    assert facts["audio"] and facts["frames"] == 20
    with av.open(str(out / f"tone_{codec}_overlay.mp4")) as c:
        assert c.streams.audio[0].codec_context.codec.canonical_name == codec
    assert facts["audio_s"] == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize("how", ["sigterm-parent", "ctrl-c-group"])
def test_sigterm_with_jobs_stops_the_workers_and_starts_nothing_new(tmp_path, model_args, how):
    """SIGTERM to infer.py --jobs 2 with four videos, once the first two run: exit 130 soon, the
    running videos end where they are (logs and overlay hold the same frames, nothing
    half-written), and the videos still queued never start."""
    import signal
    import time

    import av

    clips = [need_shared(DATA / "videos" / f"{s}.mp4") for s in ("lp_d13", "lp_d14", "lp_d3", "lp_d12")]
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "infer.py"), "--video", *map(str, clips), *model_args,
           "--detector", "haar", "--jobs", "2", "--save-video", "--dump-landmarks-csv", "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)  # its own process group, as a terminal's job
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("logs/.*_meta.csv.part"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(out.glob("logs/.*_meta.csv.part"))) == 2, "the two workers did not start"
        if how == "sigterm-parent":
            proc.send_signal(signal.SIGTERM)
        else:  # Ctrl-C in a terminal: SIGINT to the parent and its workers alike
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not list(out.rglob("*.part"))
    started = sorted(p.name[: -len("_meta.csv")] for p in out.glob("logs/*_meta.csv"))
    assert "lp_d12" not in started and len(started) <= 3
    for stem in started:
        meta = read_meta(out / "logs" / f"{stem}_meta.csv").frames
        rows = len(meta)
        with av.open(str(out / f"{stem}_overlay.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == rows
        summary = (out / "logs" / f"{stem}_summary.csv").read_text().splitlines()
        assert len(summary) == rows + 1  # every log holds the same frames
        assert set(read_landmarks(out / "logs" / f"{stem}_landmarks.csv").frames) <= set(meta)
    assert any(len(read_meta(out / "logs" / f"{s}_meta.csv").frames) < 250 for s in started)  # cut short
    if how == "ctrl-c-group":
        return
    # stopped again, a rerun: the videos it stops part way keep the first run's files, and the
    # line says so (the workers' own line does not reach the user)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
              and p.name not in ("corpus.csv", ".facemap-output")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("logs/.*_meta.csv.part"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "the ones stopped part way keep the earlier run's outputs as they were (" in err.strip().splitlines()[-1]
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
             and p.name not in ("corpus.csv", ".facemap-output")}
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_jobs_worker_killed_is_replaced_and_its_videos_run_again(tmp_path, model_args):
    """--jobs 2, one worker process killed mid-video (SIGKILL, as the out-of-memory killer does):
    the run ended "a bug in facemap (BrokenProcessPool ...)", exit 1, with the videos not yet done
    never run. Now the videos the dead pool held run again in a new one, the line naming the
    video the killed worker ran: every video complete."""
    import signal
    import time

    from tests.raycluster import cmdline, descendants

    clips = [need_shared(DATA / "videos" / f"{s}.mp4") for s in ("lp_d13", "lp_d14", "lp_d3")]
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "infer.py"), "--video", *map(str, clips), *model_args,
           "--detector", "haar", "--jobs", "2", "--dump-landmarks-csv", "--max-frames", "200", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("logs/.*_meta.csv.part"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [pid for pid in descendants(proc.pid) if "spawn_main" in cmdline(pid)]
        assert workers, "no worker process"
        os.kill(workers[0], signal.SIGKILL)
        said, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    again = [ln for ln in said.splitlines() if ln.startswith("a worker process was killed (by a signal: out of memory?) running ")]
    assert len(again) == 1, said
    culprit = again[0].split(" running ")[1].split(";")[0]
    assert culprit in ("lp_d13", "lp_d14"), again  # the video its worker ran, not the one queued (lp_d3)
    for clip in clips:
        assert len(read_meta(out / "logs" / f"{clip.stem}_meta.csv").frames) == 200
    assert not list(out.rglob("*.part"))


def test_no_face_box_means_no_landmarks_by_default(tmp_path, model_args):
    """fr_short_hamilton_clip cuts to an audience of small faces the detector does not box
    (frames 21-82; where it boxes one, the stand-in model's box swells off it within some 15
    frames): those frames are no_face rows with no landmarks, drawn or logged,
    and the model never ran on them. --fallback-center brings back the original tool's centre
    crop (warn / no_bbox); with --skip-if-no-face (the original flag, now the default) it is a
    usage error."""
    clip = need_shared(DATA / "videos" / "fr_short_hamilton_clip.mp4")
    out = tmp_path / "out"
    common = ["--video", str(clip), *model_args, "--detector", "haar", "--end", "3.5", "--dump-landmarks-csv", "-q"]
    assert _run([*common, "-o", str(out)]) == 0
    import pandas as pd

    meta = pd.read_csv(out / "logs" / "fr_short_hamilton_clip_meta.csv")
    lm = read_landmarks(out / "logs" / "fr_short_hamilton_clip_landmarks.csv")
    no_face = set(meta.frame[meta.status == "no_face"])
    assert len(no_face & set(range(21, 83))) >= 10
    assert "no_bbox" not in set(meta.reason)
    logged = {int(f) for f in lm.frames}
    assert not logged & no_face  # no landmarks where there was no face box
    assert logged == set(meta.frame) - no_face
    fallback = tmp_path / "fallback"
    assert _run([*common, "-o", str(fallback), "--fallback-center"]) == 0
    meta_fb = pd.read_csv(fallback / "logs" / "fr_short_hamilton_clip_meta.csv")
    centre = meta_fb[meta_fb.reason == "no_bbox"]
    assert len(centre) >= 10 and set(centre.status) <= {"warn", "unstable"}
    assert _run([*common, "-o", str(tmp_path / "both"), "--fallback-center", "--skip-if-no-face"]) == 2


def test_smoothing_changes_the_overlay_only(tmp_path, model_args):
    """--smooth high and --smooth off write the same logs byte for byte (the landmarker's
    landmarks and pose: issue 13), and different overlay videos (the smoothed points drawn)."""
    import av

    need_shared(D19)
    overlays = {}
    for level in ("high", "off"):
        out = tmp_path / level
        assert _run(["--video", str(D19), *model_args, "-o", str(out), "--max-frames", "30", "--save-video",
                     "--dump-csv", "--dump-landmarks-csv", "--hud", "--smooth", level, "-q"]) == 0
        with av.open(str(out / "lp_d19_overlay.mp4")) as c:
            overlays[level] = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    names = sorted(p.name for p in (tmp_path / "off" / "logs").iterdir())
    assert names == ["lp_d19_landmarks.csv", "lp_d19_meta.csv", "lp_d19_raw.csv", "lp_d19_run.json", "lp_d19_summary.csv"]
    for name in names:
        assert (tmp_path / "high" / "logs" / name).read_bytes() == (tmp_path / "off" / "logs" / name).read_bytes(), name
    assert len(overlays["high"]) == len(overlays["off"]) == 30
    # pixels changed by more than 60 levels: a few hundred where only the encoder differs (a
    # frame that passes through the filter), thousands where the drawn points moved
    changed = [int((np.abs(a.astype(int) - b) > 60).sum()) for a, b in zip(overlays["high"], overlays["off"], strict=True)]
    assert sum(c > 2000 for c in changed) >= 15, changed


def test_a_folder_that_is_also_the_output_skips_its_own_overlays(tmp_path, model_args, capsys):
    """--video D -o D --save-video, twice: the second run does not take the first run's
    <stem>_overlay.mp4 (listed in D's manifest) for an input; a video of the user's named
    like an overlay still is one."""
    need_shared(D0)
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(D0.read_bytes())
    argv = ["--video", str(folder), *model_args, "-o", str(folder), "--save-video", "--max-frames", "5"]
    assert _run(argv) == 0
    assert (folder / "clip_overlay.mp4").is_file()
    capsys.readouterr()
    (folder / "mine_overlay.mp4").write_bytes(D0.read_bytes())  # the user's, not facemap's
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert f"clip_overlay.mp4: skipped, facemap wrote it into {folder}/ (an output, not an input)" in out.splitlines()
    assert sorted(p.name for p in (folder / "logs").glob("*_meta.csv")) == ["clip_meta.csv", "mine_overlay_meta.csv"]
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["clip.mp4", "clip_overlay.mp4", "mine_overlay.mp4",
                                                         "mine_overlay_overlay.mp4"]
    only_ours = ["--video", str(folder / "clip_overlay.mp4"), *model_args, "-o", str(folder)]
    assert _run(only_ours) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"infer.py: error: {folder / 'clip_overlay.mp4'}: written by facemap into {folder}/, an output, not an input; "
        "give the original videos")


def test_a_stop_reaching_an_idle_worker_lets_the_pool_end_it(monkeypatch):
    """A --jobs worker stopped while idle (waiting for a video, or handing its report back) did
    os._exit(130) at once: killed while it held the pool's result lock, it left the other worker
    waiting for that lock forever, and the run with it (a Ctrl-C that hung; py-spy showed the
    worker in SimpleQueue.put). Now it only marks the stop: a queued video never starts, and the
    pool's shutdown ends the process."""
    from facemap.cli import videos

    def no_exit(code: int) -> None:
        raise AssertionError(f"os._exit({code}) in a worker")

    monkeypatch.setattr(videos.os, "_exit", no_exit)
    monkeypatch.setattr(videos, "_WORKER", {"busy": False})
    videos._interrupt(signal.SIGTERM, None)
    assert videos._WORKER["stopping"] is True
    with pytest.raises(KeyboardInterrupt):
        videos._worker_run(None, None, None, None)  # the next video never starts
    monkeypatch.setattr(videos, "_WORKER", {"busy": True})
    with pytest.raises(KeyboardInterrupt):  # a busy worker ends its video
        videos._interrupt(signal.SIGINT, None)
    videos._interrupt(signal.SIGTERM, None)  # the parent's SIGTERM after the group's Ctrl-C: once is enough
