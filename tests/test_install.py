"""``pip install .`` gives a package that runs: in a fresh venv, the installed commands
``facemap-infer`` and ``facemap-analyze`` and ``python -m facemap`` answer ``--help`` from the
installed copy, outside the source tree.

Offline and fast: the venv sees the packages the tests run with (a ``.pth`` line, so its
dependencies need no download), and the project is built without build isolation (the
setuptools and wheel already installed; ``wheel`` is in requirements.txt for this) from a copy of
the sources, so the build leaves nothing in the checkout.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the project installed by ``pip install .``: (its bin folder, env)."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(REPO / "facemap", src / "facemap", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # the packages this test run has (numpy, onnxruntime, ..., pip, setuptools, wheel), after the venv's own
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]) if Path(p).is_dir()]
    Path(purelib, "zz_test_deps.pth").write_text("\n".join(ours) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    proc = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "."], src, env)
    if proc.returncode != 0 and "bdist_wheel" in proc.stdout + proc.stderr:
        pytest.fail("cannot build a wheel offline: pip install -r requirements.txt (it brings wheel)", pytrace=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return bindir, env


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["facemap-infer", "--help"], "--landmarker"),
        (["facemap-analyze", "--help"], "--logs"),
        (["python", "-m", "facemap", "--help"], "analyze"),
        (["python", "-m", "facemap", "infer", "--help"], "--video"),
    ],
)
def test_pip_install_gives_commands_that_run(installed, tmp_path, command, says):
    bindir, env = installed
    exe = shutil.which(command[0], path=str(bindir))
    assert exe is not None and Path(exe).parent == bindir, f"{command[0]} is not installed in the venv"
    proc = _run([exe, *command[1:]], tmp_path, env)  # outside the checkout: the installed copy
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and says in proc.stdout
    assert proc.stderr == ""


def test_the_installed_package_is_the_venvs_copy(installed, tmp_path):
    bindir, env = installed
    proc = _run([str(bindir / "python"), "-c", "import facemap, sys; print(facemap.__file__)"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    where = Path(proc.stdout.strip())
    assert bindir.parent in where.parents and REPO not in where.parents


# package data: (module, file, code printing what the installed copy loaded from it, what it prints)
PACKAGE_DATA = [
    ("facemap.analysis", "label_models.json",
     "from facemap.analysis.learned import label_models; m = label_models()['mouth_open']; print(m.threshold, len(m.features))",
     "0.3 6"),
    ("facemap.backends", "dlib_box.json",
     "from facemap.backends.dlib_backend import dlib_box_model; print(*dlib_box_model().weights.shape)",
     "136 3"),
]


@pytest.mark.parametrize(("package", "name", "code", "says"), PACKAGE_DATA, ids=[p[1] for p in PACKAGE_DATA])
def test_the_installed_package_has_its_data_files(installed, tmp_path, package, name, code, says):
    """The learned label models and dlib's box model are package data: the installed copy loads
    them from itself (a file left out of pyproject's package-data fails here)."""
    bindir, env = installed
    where = f"from importlib import resources; print(resources.files('{package}').joinpath('{name}'))"
    proc = _run([str(bindir / "python"), "-c", f"{where}\n{code}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    path, loaded = proc.stdout.split("\n", 1)
    assert bindir.parent in Path(path).parents and loaded.strip() == says
