"""Offline by default: the network is unreachable (faked three ways: FACEMAP_OFFLINE=1, the URLs
pointed at a closed port on 127.0.0.1, the download opener raising) and the default run still
works: YuNet out of reach gives the Haar cascade with one notice line, no model.onnx gives the
dlib landmarker with one notice line, and every command of the original tool's README exits 0
(tests/test_docs.py runs our README offline). ``python -m facemap fetch`` fills the caches from a local HTTP server that the test
starts and stops. No test touches the internet."""

from __future__ import annotations

import json
import logging
import traceback
import urllib.error
from pathlib import Path

import pytest

import facemap
from facemap import assets
from facemap.cli.commands import infer_main
from facemap.errors import DownloadError, ModelError
from tests.conftest import need_shared
from tests.standins import DATA, make_standin_model, write_basis
from tests.test_assets import free_port

PHOTO = DATA / "images" / "fr_obama-720p.jpg"
HAAR_NOTICE = "using OpenCV's Haar cascade instead (--detector haar); for YuNet, run `python -m facemap fetch --detector`"
DLIB_NOTICE = "running the model-free dlib landmarker instead"


def _unreachable(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every download fail the way an offline machine does (or forbid it)."""
    if how == "FACEMAP_OFFLINE":
        monkeypatch.setenv(assets.OFFLINE_ENV, "1")

        def never(*a: object, **k: object) -> None:
            raise AssertionError("FACEMAP_OFFLINE=1 opened a URL")

        monkeypatch.setattr(assets.urllib.request, "urlopen", never)
    elif how == "closed port":
        monkeypatch.setenv(assets.STORE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    else:  # the opener fails as with no route to the host

        def no_route(*a: object, **k: object) -> None:
            raise urllib.error.URLError(OSError(101, "Network is unreachable"))

        monkeypatch.setattr(assets.urllib.request, "urlopen", no_route)


def _notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings logged (a command prints each as one ``facemap: ...`` line on stderr)."""
    notes = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    return notes


# ----------------------------------------------------------------------------- the detector


@pytest.mark.parametrize("how", ["FACEMAP_OFFLINE", "closed port", "opener fails"])
def test_the_default_detector_falls_back_to_haar_offline(tmp_path, capsys, caplog, monkeypatch, no_yunet, how):
    """Model and basis present, YuNet neither cached nor downloadable: exit 0 with Haar's box,
    one notice line naming Haar and how to get YuNet; the JSON names the detector. An explicit
    --detector yunet keeps its one-line error (exit 4)."""
    need_shared(PHOTO)
    _unreachable(how, monkeypatch)
    model = make_standin_model(tmp_path / "m", weight_scale=0.5)
    basis = write_basis(tmp_path / "basis")
    out = tmp_path / "out"
    args = ["--image", str(PHOTO), "--model", str(model), "--basis-dir", str(basis), "-o", str(out), "-q"]
    with caplog.at_level(logging.WARNING):
        assert infer_main(args) == 0
    assert capsys.readouterr().err == ""
    notes = _notices(caplog)
    assert len(notes) == 1 and notes[0].startswith(f"the YuNet face detector is not in {no_yunet} "), notes
    assert HAAR_NOTICE in notes[0] and "--detector-model PATH" in notes[0]
    why = {"FACEMAP_OFFLINE": "(FACEMAP_OFFLINE=1)", "closed port": "Connection refused",
           "opener fails": "Network is unreachable"}[how]
    assert why in notes[0]
    doc = json.loads((out / "fr_obama-720p.json").read_text())
    assert doc["detector"] == "haar" and doc["face_found"] is True
    box = doc["box"]
    assert 540 < box[0] < 620 and 700 < box[2] < 800  # the face (dlib's box: 578,118-756,291)
    assert list(no_yunet.glob("*")) == [] or how != "FACEMAP_OFFLINE"  # nothing written offline
    code = infer_main([*args, "--detector", "yunet", "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 4 and err.count("\n") == 1 and "YuNet face detector" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- the landmarker


@pytest.fixture()
def no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder and a script folder without model.onnx, an empty facemap cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "app").mkdir()
    return tmp_path / "app"


def test_no_model_runs_the_dlib_landmarker_with_one_notice(no_model, tmp_path, capsys, caplog, monkeypatch):
    """`infer.py --image face.jpg` without any model.onnx: dlib's landmarker and detector, one
    notice line naming where it looked and how to get FaceMap, exit 0; --landmarker facemap
    keeps the error (exit 4); without dlib installed, the error too."""
    pytest.importorskip("dlib")
    need_shared(PHOTO)
    with caplog.at_level(logging.WARNING):
        assert infer_main(["--image", str(PHOTO), "-o", "out"], script_dir=no_model) == 0
    cap = capsys.readouterr()
    notes = _notices(caplog)
    assert len(notes) == 1 and notes[0].startswith(f"no model.onnx found (looked at {no_model / 'model.onnx'}, ")
    assert DLIB_NOTICE in notes[0] and "`python -m facemap fetch --model`" in notes[0] and "--model PATH" in notes[0]
    assert "landmarker dlib:" in cap.out
    doc = json.loads((tmp_path / "out" / "fr_obama-720p.json").read_text())
    assert doc["landmarker"] == "dlib" and doc["detector"] == "dlib-hog"
    assert [round(v) for v in doc["box"]] == [578, 118, 756, 291]  # as the README shows
    code = infer_main(["--image", str(PHOTO), "-o", "o2", "--landmarker", "facemap"], script_dir=no_model)
    err = capsys.readouterr().err
    assert code == 4 and err.startswith("infer.py: error: model.onnx not found") and _notices(caplog) == []
    monkeypatch.setattr("facemap.choose.dlib_installed", lambda: False)
    assert infer_main(["--image", str(PHOTO), "-o", "o3"], script_dir=no_model) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.onnx not found" in err


def test_open_without_a_model_and_offline(no_model, tmp_path, caplog, monkeypatch, no_yunet):
    """facemap.open(): no model anywhere -> dlib with one logged notice; a model named but
    missing, offline -> the one-line ModelError first (no urllib traceback about YuNet); the
    model present, YuNet out of reach -> Haar with one logged notice; YuNet named explicitly ->
    its DownloadError, whose traceback holds no urllib frame."""
    pytest.importorskip("dlib")
    _unreachable("opener fails", monkeypatch)
    with caplog.at_level("WARNING"), facemap.open() as fm:
        assert (fm.landmarker.name, fm.detector.name) == ("dlib", "dlib-hog")
    assert [r.getMessage() for r in caplog.records if DLIB_NOTICE in r.getMessage()] != []
    assert "give model PATH" in caplog.text
    caplog.clear()
    with pytest.raises(ModelError) as err:
        facemap.open("facemap", model=tmp_path / "none.onnx")
    assert "none.onnx: no such model file" in str(err.value) and "\n" not in str(err.value)
    model = make_standin_model(tmp_path / "m")
    with caplog.at_level("WARNING"), facemap.open("facemap", model=model, basis_dir=write_basis(tmp_path / "b")) as fm:
        assert fm.detector.name == "haar"
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "using OpenCV's Haar cascade instead (detector haar)" in notices[0]
    assert 'give detector=DetectorOptions("yunet", {"model": PATH})' in notices[0]  # the Python spelling
    with pytest.raises(DownloadError) as err:
        facemap.open("facemap", model=model, basis_dir=tmp_path / "b", detector="yunet")
    text = "".join(traceback.format_exception(err.value))
    assert "urllib" not in text and "During handling" not in text and "Network is unreachable" in str(err.value)
    assert 'pass it as detector=DetectorOptions("yunet", {"model": PATH})' in str(err.value)


# ----------------------------------------------------------------------------- bad image first


@pytest.mark.parametrize("model_flag", [False, True])
def test_a_truncated_jpeg_is_named_before_the_missing_model(no_model, tmp_path, capsys, monkeypatch, model_flag):
    """A JPEG cut in half (its header intact) and no model: the bad-image error (exit 3), not
    "model.onnx not found" (with --model a missing file, or none given and dlib absent)."""
    whole = need_shared(PHOTO).read_bytes()
    cut = tmp_path / "face.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    monkeypatch.setattr("facemap.choose.dlib_installed", lambda: False)
    args = ["--image", str(cut), "-o", "out"] + (["--model", str(tmp_path / "none.onnx")] if model_flag else [])
    assert infer_main(args, script_dir=no_model) == 3
    err = capsys.readouterr().err
    assert err == f"infer.py: error: {cut}: not a readable image (truncated, or not an image format OpenCV reads); re-export it as JPEG or PNG\n"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- --jump-threshold


def test_jump_threshold_in_the_original_tools_unit(tmp_path, capsys):
    """--jump-threshold 25 (the original's default) is the original's measure, said once; with
    dlib (no parameters) the guard keeps its default, said once; below 10 it is facemap's."""
    from facemap.cli.build import guard_options
    from facemap.cli.commands import infer_parser
    from facemap.cli.config import InferConfig

    def cfg(*flags: str) -> InferConfig:
        return InferConfig.from_namespace(infer_parser().parse_args(["--video", "v.mp4", *flags]))

    guard, note = guard_options(cfg("--jump-threshold", "25.0"))
    assert (guard.jump_threshold, guard.params_l2) == (0.0, 25.0)
    assert note.startswith("note: --jump-threshold 25 is read in the original tool's unit: a frame whose 265 raw 3DMM")
    guard, note = guard_options(cfg("--jump-threshold", "25.0", "--landmarker", "dlib"))
    assert (guard.jump_threshold, guard.params_l2) == (1.0, 0.0)
    assert "which the dlib landmarker does not give: the jump guard keeps facemap's own measure at its default 1.0" in note
    guard, note = guard_options(cfg("--jump-threshold", "2"))
    assert (guard.jump_threshold, guard.params_l2, note) == (2.0, 0.0, None)


# ----------------------------------------------------------------------------- done when


def test_the_original_readme_runs_with_the_network_unreachable(tmp_path, capsys, caplog, monkeypatch, no_yunet):
    """Every command of the original tool's README, model.onnx and the basis present, no YuNet
    and no network: exit 0 and the promised files, with the Haar notice once per command that
    detects. (dlib's own detector needs nothing: tests/test_original_readme.py runs its commands
    with the network unreachable.)"""
    from tests import test_original_readme as original

    need_shared(DATA)  # the original README test's folder: the user's photo and movie, model, basis
    (tmp_path / "face.jpg").symlink_to(PHOTO)
    (tmp_path / original.MOVIE).symlink_to(DATA / "videos" / "lp_d0.mp4")
    make_standin_model(tmp_path, weight_scale=0.5)
    monkeypatch.setenv("QAIHM_STORE_ROOT", str(tmp_path / "store"))
    write_basis(assets.qaihm_cache_dir())
    monkeypatch.chdir(tmp_path)
    folder = tmp_path
    _unreachable("opener fails", monkeypatch)
    for command, files in original.COMMANDS:
        with caplog.at_level(logging.WARNING):
            code = original._run(command, [])
        cap = capsys.readouterr()
        assert code == 0, f"{command}\n{cap.err}"
        assert "Traceback" not in cap.err and "cannot download" not in cap.err
        needs_detector = command.startswith("python infer.py") and "--inspect" not in command
        haar = [n for n in _notices(caplog) if "Haar cascade instead" in n]
        assert len(haar) == int(needs_detector), f"{command}\n{haar}"
        for rel in files:
            assert (folder / rel).is_file(), f"{command}: {rel} missing"
