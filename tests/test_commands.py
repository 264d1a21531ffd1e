"""The commands as a package runs them: ``python -m facemap infer|analyze`` and the installed
``facemap-infer`` / ``facemap-analyze`` (pyproject's [project.scripts]), beside the two scripts."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import tomllib

from tests.conftest import need_shared
from tests.standins import DATA

REPO = Path(__file__).resolve().parents[1]


def _module(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facemap", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env=None)


def test_python_m_facemap_lists_its_commands_and_refuses_others():
    done = _module()
    assert done.returncode == 2 and "python -m facemap {infer,analyze,fetch}" in done.stdout
    done = _module("--help")
    assert done.returncode == 0 and "infer     images, videos" in done.stdout
    done = _module("bogus")
    assert done.returncode == 2 and done.stderr.startswith("python -m facemap: error: unknown command 'bogus'")
    done = _module("infer", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m facemap infer")
    done = _module("analyze", "--version")
    assert done.returncode == 0 and done.stdout.startswith("facemap ")
    done = _module("fetch", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m facemap fetch [-h] [--model] [--basis] [--detector]")


def test_python_m_facemap_runs_both_commands_on_a_photo(tmp_path):
    """infer on a shared photo, then analyze its logs, from another folder (nothing beside it)."""
    pytest.importorskip("dlib")
    photo = need_shared(DATA / "images" / "fr_obama-720p.jpg")
    env_repo = {"PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "facemap", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=tmp_path, timeout=120, env={**__import__("os").environ, **env_repo})
    done = run("infer", "--image", str(photo), "--landmarker", "dlib", "--dump-landmarks-csv", "-o", "out", "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "logs" / "fr_obama-720p_landmarks.csv").is_file()
    done = run("analyze", "--landmarks", "out/logs/fr_obama-720p_landmarks.csv", "--out", "an", "-q")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) == float((tmp_path / "an" / "score.txt").read_text())


def test_the_installed_commands_point_at_the_package():
    """pyproject's console scripts name functions of the package, which run the commands with
    their own name in messages."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(scripts) == ["facemap-analyze", "facemap-infer"]
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        fn = getattr(import_module(module), func)
        assert callable(fn)
        old = sys.argv
        sys.argv = [name, "--help"]
        try:
            with pytest.raises(SystemExit) as ended:
                sys.exit(fn())
        finally:
            sys.argv = old
        assert ended.value.code == 0


@pytest.mark.parametrize(
    ("argv", "detector", "lost_every"),
    [
        ([], "yunet", 1),
        (["--landmarker", "dlib"], "dlib-hog", 5),  # dlib's slow default detector: every 5th frame while lost
        (["--landmarker", "dlib", "--detector", "dlib-hog"], "dlib-hog", 1),  # as chosen: as before
        (["--landmarker", "dlib", "--detector", "haar"], "haar", 1),
        (["--landmarker", "dlib", "--lost-detect-every", "2"], "dlib-hog", 2),
        (["--detector", "yunet", "--lost-detect-every", "3"], "yunet", 3),
    ],
)
def test_the_search_while_no_face_is_followed(argv, detector, lost_every):
    from facemap.cli.build import chain_options
    from facemap.cli.commands import infer_parser
    from facemap.cli.config import InferConfig

    cfg = InferConfig.from_namespace(infer_parser().parse_args(["--video", "v.mp4", *argv]))
    assert (cfg.detector, cfg.lost_every) == (detector, lost_every)
    assert chain_options(cfg).track.lost_detect_every == lost_every
