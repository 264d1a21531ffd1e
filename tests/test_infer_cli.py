"""infer.py on images, in-process through main(argv) and once as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import infer
from facemap.io.records import read_landmarks, read_meta, read_raw
from facemap.threedmm.decode import Basis, Decoder, model_to_image
from facemap.types import BBox
from tests.conftest import need_shared
from tests.standins import DATA, synthetic_basis_arrays

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = infer.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_bbox_constant_model_matches_reference(tmp_path, capsys, shared_data, constant_model, constant_params, basis_dir):
    image = shared_data / "images" / "fr_two_people.jpg"
    out = tmp_path / "out"
    code, stdout, _ = _run(
        capsys, "--image", image, "--model", constant_model, "--basis-dir", basis_dir,
        "--bbox", "778,57,964,242", "--dump-landmarks-csv", "--dump-csv", "-o", out,
    )
    assert code == 0
    assert "fr_two_people.jpg: face 778,57-964,242" in stdout
    crop = BBox(778, 57, 964, 242).expand(0.1)
    dec = Decoder(Basis(*synthetic_basis_arrays())).decode(constant_params)
    expected = model_to_image(dec.landmarks_model, np.array([crop.as_tuple()]))[0]
    got = read_landmarks(out / "logs" / "fr_two_people_landmarks.csv")
    assert got.frames.tolist() == [1]
    np.testing.assert_allclose(got.landmarks[0], expected, atol=1e-3)
    raw = read_raw(out / "logs" / "fr_two_people_raw.csv", strict=True)
    np.testing.assert_allclose(raw.params[0], constant_params, atol=1e-6)
    doc = json.loads((out / "fr_two_people.json").read_text())
    assert doc["box"] == [778, 57, 964, 242]
    assert doc["pose_deg"]["yaw"] == pytest.approx(float(constant_params[259]) * 90, abs=1e-3)
    assert len(doc["expression"]) == 39 and doc["provider"] == "CPUExecutionProvider"
    overlay = cv2.imread(str(out / "fr_two_people_overlay.jpg"))
    assert overlay.shape == (661, 1126, 3)  # full resolution


def test_detected_face_overlay_and_logs(tmp_path, capsys, shared_data, standin_model, basis_dir):
    out = tmp_path / "o"
    code, stdout, _ = _run(
        capsys, "--image", shared_data / "images" / "skimage_astronaut.png",
        shared_data / "images" / "dlib_dogs.jpg", "--model", standin_model,
        "--basis-dir", basis_dir, "-o", out, "--mesh", "--hud",
    )
    assert code == 0
    assert "skimage_astronaut.png: face" in stdout
    meta = read_meta(out / "logs" / "skimage_astronaut_meta.csv")
    assert meta.status.tolist() == ["ok"]
    x0, y0, x1, y1 = meta.boxes[0]
    assert 150 < (x0 + x1) / 2 < 280 and 80 < (y0 + y1) / 2 < 200  # on her face
    assert (out / "skimage_astronaut_overlay.jpg").exists() and (out / "dlib_dogs.json").exists()


@pytest.mark.parametrize("max_faces", ["0", "2", "1"])
def test_dump_npy_holds_every_face(tmp_path, capsys, shared_data, standin_model, basis_dir, max_faces):
    """--dump-npy: (faces, 265) float32 with --max-faces 0 or N, row i the face with face_id i
    (its raw.csv row); one face (the default) keeps its (1, 265)."""
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--image", shared_data / "images" / "fr_two_people.jpg", "--model", standin_model,
                        "--basis-dir", basis_dir, "--detector", "haar", "--max-faces", max_faces, "--dump-npy",
                        "--dump-csv", "-o", out, "-q")
    assert code == 0, err
    npy = np.load(out / "logs" / "fr_two_people_raw.npy")
    raw = read_raw(out / "logs" / "fr_two_people_raw.csv", strict=True)
    assert npy.dtype == np.float32 and npy.shape == ((1, 265) if max_faces == "1" else (2, 265))
    assert list(raw.face_ids) == ([0] if max_faces == "1" else [0, 1])
    for fid in raw.face_ids:
        np.testing.assert_allclose(npy[fid], raw.of_face(fid).params[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(npy[0], npy[-1]) or max_faces == "1"


def test_no_face_detect_uses_whole_image(tmp_path, capsys, shared_data, standin_model, basis_dir):
    code, stdout, _ = _run(
        capsys, "--image", shared_data / "images" / "sadtalker_happy.png", "--no-face-detect",
        "--model", standin_model, "--basis-dir", basis_dir, "-o", tmp_path,
    )
    assert code == 0 and "face 0,0-255,255" in stdout


def test_folder_input_with_clashing_stems(tmp_path, capsys, standin_model, basis_dir):
    src = tmp_path / "in"
    src.mkdir()
    img = np.full((120, 100, 3), 128, np.uint8)
    cv2.imwrite(str(src / "a.jpg"), img)
    cv2.imwrite(str(src / "a.png"), img)
    code, stdout, _ = _run(
        capsys, "--image", src, "--no-face-detect", "--model", standin_model,
        "--basis-dir", basis_dir, "-o", tmp_path / "out",
    )
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert names == ["a_jpg.json", "a_png.json"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--image", "{tmp}/missing.jpg"], 3, "missing.jpg: image not found"),
        (["--image", "{tmp}/empty.jpg"], 3, "empty.jpg: image file is empty"),
        (["--image", "{tmp}/text.jpg"], 3, "text.jpg: not a readable image"),
        (["--image", "{img}", "--bbox", "1,2,3"], 2, "--bbox: expected 4 numbers"),
        (["--image", "{img}", "--model", "{tmp}/none.onnx"], 4, "none.onnx: no such model file"),
        (["--image", "{img}", "-o", "{tmp}/text.jpg"], 5, "text.jpg: is a file"),
        (["--image", "{img}", "--video", "{img}"], 2, "exactly one of"),
        (["--video", "{img}"], 3, "ok.png: is a picture; pass it with --image"),
        (["--image", "{img}", "--provider", "tpu"], 2, "invalid choice"),
        (["--image", "{img}", "--point-size", "-3"], 2, "--point-size must be 0 (scale with the face) to 1000"),
        (["--image", "{img}", "-o", ""], 2, "--output is empty"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_code(tmp_path, capsys, standin_model, basis_dir, args, code, needle):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, I am not a JPEG")
    img = tmp_path / "ok.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 100, np.uint8))
    argv = [a.format(tmp=tmp_path, img=img) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(standin_model)]
    argv += ["--basis-dir", str(basis_dir), "--no-face-detect"]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out")]
    got, out, err = _run(capsys, *argv)
    assert got == code
    assert needle in err
    assert "Traceback" not in err


def test_no_input_is_the_one_line_without_the_model_notice_before_it(tmp_path, capsys, monkeypatch, caplog):
    """`python infer.py` alone, no model.onnx anywhere: only the usage line (the notice that no
    model was found came first, for a run that was never going to start)."""
    from facemap.cli.commands import infer_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert infer_main([], script_dir=tmp_path) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == "infer.py: error: give exactly one of --image, --video or --camera (see --help)\n"
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("model", "where"),
    [("{tmp}/models", "{tmp}/models"), ("{tmp}/new", "{tmp}/new"), ("{tmp}/models/model.onnx", "{tmp}/models"), (None, ROOT)],
)
def test_fetch_model_goes_where_model_looks(tmp_path, capsys, monkeypatch, model, where):
    """--model DIR --fetch-model downloads into DIR (where --model then looks), not DIR's parent."""
    (tmp_path / "models").mkdir()
    got = []
    monkeypatch.setattr("facemap.assets.fetch_model", lambda target, **kw: got.append(Path(target)) or Path(target) / "model.onnx")
    argv = ["--fetch-model"] + (["--model", model.format(tmp=tmp_path)] if model else [])
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    assert got == [Path(str(where).format(tmp=tmp_path))]


def test_an_interrupted_fetch_model_says_nothing_of_logs(tmp_path, capsys, monkeypatch):
    def stopped(target, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("facemap.assets.fetch_model", stopped)
    code, out, err = _run(capsys, "--fetch-model", "--model", tmp_path)
    assert code == 130 and err == "infer.py: interrupted: nothing partial is left; run again to download the model\n"


def test_inspect(capsys, standin_model):
    code, out, _ = _run(capsys, "--inspect", "--model", standin_model)
    assert code == 0
    assert "input      image  shape [1, 3, 128, 128]  tensor(float)" in out
    assert "output     parameters_3dmm  shape [1, 265]" in out
    assert "model.data" in out and "CPUExecutionProvider" in out


def test_end_to_end_as_a_user(tmp_path, shared_data, standin_model, basis_dir):
    """The README's command, run as a separate process."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "--image", str(shared_data / "images" / "fr_two_people.jpg"),
         "--model", str(standin_model), "--basis-dir", str(basis_dir), "-o", str(tmp_path / "out"),
         "--dump-landmarks-csv"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fr_two_people.jpg: face" in proc.stdout and "(largest of 2)" in proc.stdout
    assert (tmp_path / "out" / "logs" / "fr_two_people_landmarks.csv").exists()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "--image", str(tmp_path / "nope.jpg"),
         "--model", str(standin_model), "--basis-dir", str(basis_dir)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [f"infer.py: error: {tmp_path / 'nope.jpg'}: image not found; check the path"]


def test_bbox_with_no_margin_is_the_reference_crop(tmp_path, capsys, shared_data, constant_model, constant_params, basis_dir, golden_vectors):
    """--face-margin 0: the crop box is the given box, and the landmarks are exactly Qualcomm's
    transform_landmark_coordinates of that box (golden bboxes reused)."""
    box = golden_vectors["bboxes"][1]  # 565,62,764,261: inside fr_two_people.jpg
    code = infer.main([
        "--image", str(shared_data / "images" / "fr_two_people.jpg"), "--model", str(constant_model),
        "--basis-dir", str(basis_dir), "--bbox", ",".join(str(int(v)) for v in box),
        "--face-margin", "0", "--dump-landmarks-csv", "-o", str(tmp_path / "o"), "-q",
    ])
    assert code == 0, capsys.readouterr().err
    dec = Decoder(Basis(*synthetic_basis_arrays())).decode(constant_params)
    expected = model_to_image(dec.landmarks_model, box[None])[0]
    got = read_landmarks(tmp_path / "o" / "logs" / "fr_two_people_landmarks.csv").landmarks[0]
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--detector-model", "{tmp}/none.onnx"], 4, "none.onnx: no such YuNet model file (given as --detector-model)"),
        (["--detector", "haar", "--detector-model", "{tmp}/none.onnx"], 2, "--detector-model goes with --detector yunet, not haar"),
    ],
)
def test_detector_model_mistakes(tmp_path, capsys, standin_model, basis_dir, extra, code, needle):
    img = tmp_path / "ok.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 100, np.uint8))
    argv = ["--image", img, "--model", standin_model, "--basis-dir", basis_dir, "-o", tmp_path / "out"]
    got, _, err = _run(capsys, *argv, *[a.format(tmp=tmp_path) for a in extra])
    assert got == code and needle in err and len(err.strip().splitlines()) == 1


def test_crop_flags_a_dlib_run_ignores_are_said_once(tmp_path, capsys, caplog):
    """--normalize, --bgr and --face-margin do nothing with dlib: one warning names them (they
    were accepted silently); --decode-3dmm's note no longer claims a 3DMM decode dlib has none of."""
    import logging

    photo = need_shared(DATA / "images" / "fr_obama-720p.jpg")
    pytest.importorskip("dlib")
    with caplog.at_level(logging.WARNING):
        code = infer.main(["--image", str(photo), "--landmarker", "dlib", "--normalize", "imagenet", "--bgr",
                           "--face-margin", "0.3", "--decode-3dmm", "-o", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0 and "decoded from the 3DMM parameters" not in out
    assert "--decode-3dmm is not needed: the dlib landmarker gives its points directly" in out
    said = [r.getMessage() for r in caplog.records if "no effect with the dlib landmarker" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("--face-margin, --bgr, --normalize: no effect")


@pytest.mark.parametrize(
    ("extra", "changed"),
    [
        ([], {}),  # dlib's own detector and its every-5th-frame search are dlib's defaults
        (["--lost-detect-every", "1"], {"--lost-detect-every": 1}),
        (["--detector", "yunet"], {"--detector": "yunet", "--lost-detect-every": 1}),
    ],
)
def test_the_run_lists_only_the_settings_the_user_changed(extra, changed):
    from facemap.cli.config import InferConfig

    cfg = InferConfig.from_namespace(infer.build_parser().parse_args(["--video", "x.mp4", "--landmarker", "dlib", *extra]))
    assert cfg.changed() == changed
