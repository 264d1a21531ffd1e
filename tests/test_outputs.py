"""The output folder: marker, lock, safe --clean, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from facemap.errors import OutputError
from facemap.io.outputs import (
    FILE_MODE,
    LOCK,
    MARKER,
    OutputDir,
    atomic_write_bytes,
    atomic_write_text,
)


def test_creates_marks_and_records_files(tmp_path):
    with OutputDir(tmp_path / "out") as out:
        atomic_write_text(out.file("a_overlay.jpg"), "x")
        atomic_write_text(out.file("logs/a_meta.csv"), "y")
        assert (tmp_path / "out" / LOCK).exists()
    marker = (tmp_path / "out" / MARKER).read_text().splitlines()
    assert "a_overlay.jpg" in marker and "logs/a_meta.csv" in marker
    assert not (tmp_path / "out" / LOCK).exists()


def test_clean_removes_only_what_facemap_wrote(tmp_path):
    with OutputDir(tmp_path / "out") as out:
        atomic_write_text(out.file("logs/a_meta.csv"), "y")
    with OutputDir(tmp_path / "out", clean=True):
        pass
    assert not (tmp_path / "out" / "logs" / "a_meta.csv").exists()
    assert (tmp_path / "out").is_dir()


def test_clean_refuses_foreign_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    with pytest.raises(OutputError, match=r"thesis\.docx was not written by facemap"):
        OutputDir(folder, clean=True).open()
    assert (folder / "thesis.docx").read_text() == "precious"
    assert not (folder / LOCK).exists()


@pytest.mark.parametrize("which", ["home", "cwd", "repo"])
def test_clean_refuses_special_folders(tmp_path, monkeypatch, which):
    target = tmp_path / which
    target.mkdir()
    if which == "home":
        monkeypatch.setenv("HOME", str(target))
    elif which == "cwd":
        monkeypatch.chdir(target)
    else:
        (target / ".git").mkdir()
    with pytest.raises(OutputError, match="--clean refused"):
        OutputDir(target, clean=True).open()


def test_empty_folder_may_be_cleaned(tmp_path):
    (tmp_path / "empty").mkdir()
    with OutputDir(tmp_path / "empty", clean=True) as out:
        assert out.path.is_dir()


def test_second_run_is_locked_out(tmp_path):
    with OutputDir(tmp_path / "out"):
        (tmp_path / "out" / LOCK).write_text(str(os.getppid()))  # a live process holds it
        with pytest.raises(OutputError, match="another facemap run"):
            OutputDir(tmp_path / "out").open()


def test_stale_lock_is_taken_over(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LOCK).write_text("999999999")
    with OutputDir(tmp_path / "out"):
        assert (tmp_path / "out" / LOCK).read_text() == str(os.getpid())


def test_output_that_is_a_file(tmp_path):
    f = tmp_path / "out"
    f.write_text("not a folder")
    with pytest.raises(OutputError, match="is a file"):
        OutputDir(f).open()


def test_unwritable_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as for a read-only folder
    with pytest.raises(OutputError, match="not writable"):
        OutputDir(ro).open()


def test_folder_below_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        OutputDir(tmp_path / "f" / "out").open()


def test_atomic_write_leaves_no_partial_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_text("old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["f.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_atomic_write_gives_the_mode_open_would(tmp_path):
    """Overlays, JSON and analyzer outputs get the same permissions as the logs (not mkstemp's 0600)."""
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    with open(tmp_path / "b.csv", "w") as fh:
        fh.write("x")
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.csv").stat().st_mode) == FILE_MODE
