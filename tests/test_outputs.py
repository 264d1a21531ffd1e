"""The output folder: marker, lock, safe --clean, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from facemap.cli.config import cli_message
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
    with pytest.raises(OutputError) as err:
        OutputDir(target, clean=True).open()
    assert "--clean refused" in cli_message(err.value)


def test_empty_folder_may_be_cleaned(tmp_path):
    (tmp_path / "empty").mkdir()
    with OutputDir(tmp_path / "empty", clean=True) as out:
        assert out.path.is_dir()


def test_second_run_is_locked_out(tmp_path):
    with OutputDir(tmp_path / "out"), pytest.raises(OutputError, match=f"another facemap run \\(pid {os.getpid()}\\)"):
        OutputDir(tmp_path / "out").open()
    with OutputDir(tmp_path / "out"):  # released on close
        pass


def test_a_lock_held_by_another_process_refuses_and_dies_with_it(tmp_path):
    """The lock is an OS lock: held while its process lives, gone when it is killed (-9), and a
    pid written in a leftover lock file is never taken for a live run."""
    import signal
    import subprocess
    import sys

    (tmp_path / "out").mkdir()
    code = (
        "import sys, time; sys.path.insert(0, {!r})\n"
        "from facemap.io.outputs import OutputDir\n"
        "d = OutputDir({!r}); d.open(); print('locked', flush=True); time.sleep(60)\n"
    ).format(str(Path(__file__).resolve().parents[1]), str(tmp_path / "out"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"another facemap run \\(pid {proc.pid}\\)"):
            OutputDir(tmp_path / "out").open()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / "out" / LOCK).read_text() == str(proc.pid)  # left behind by kill -9
    with OutputDir(tmp_path / "out"):  # not held any more: taken at once
        assert (tmp_path / "out" / LOCK).read_text() == str(os.getpid())
    (tmp_path / "out" / LOCK).write_text(str(os.getppid()))  # a live pid, but no lock held
    with OutputDir(tmp_path / "out"):
        pass


def test_a_file_facemap_did_not_write_is_never_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo.json").write_text("the user's own")
    with OutputDir(tmp_path / "out") as out:
        with pytest.raises(OutputError) as err:
            out.file("photo.json")
        assert "photo.json: exists and was not written by facemap" in str(err.value)
        out.file("other.json").write_text("ours")
    assert (tmp_path / "out" / "photo.json").read_text() == "the user's own"
    listed = (tmp_path / "out" / MARKER).read_text()
    assert "photo.json" not in listed and "other.json" in listed
    with OutputDir(tmp_path / "out") as out:  # a file facemap listed is rewritten on a re-run
        out.file("other.json")


def test_clean_takes_facemaps_own_leftovers(tmp_path):
    """Temp files of a killed run and a nested facemap output (the analyzer's) are facemap's."""
    with OutputDir(tmp_path / "out" / "analysis") as ana:
        ana.file("score.txt").write_text("50")
    out = OutputDir(tmp_path / "out")
    out.open()
    out.file("logs/a_meta.csv").write_text("x")
    out.file("a_overlay.mp4")  # listed, then the run is killed while writing them:
    out.file("a.json")
    out._marker_fh.close()  # the OS closes its files and releases its lock (kill -9)
    os.close(out._lock_fd)
    (tmp_path / "out" / "logs" / ".a_meta.csv.part").write_text("half")
    (tmp_path / "out" / ".a_overlay.mp4.part").write_text("half")
    (tmp_path / "out" / ".a.json.x1y2.part").write_text("half")
    with OutputDir(tmp_path / "out", clean=True):
        pass
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == [MARKER]  # all the rest removed
    (tmp_path / "out").mkdir(exist_ok=True)
    with OutputDir(tmp_path / "out") as out:
        out.file("a.txt").write_text("x")
    (tmp_path / "out" / "sub").mkdir()
    (tmp_path / "out" / "sub" / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="sub/notes.txt was not written by facemap"):
        OutputDir(tmp_path / "out", clean=True).open()
    (tmp_path / "out" / "sub" / "notes.txt").unlink()
    (tmp_path / "out" / ".draft.part").write_text("the user's, not a temp file of ours")
    with pytest.raises(OutputError, match=r"\.draft\.part was not written by facemap"):
        OutputDir(tmp_path / "out", clean=True).open()
    assert (tmp_path / "out" / ".draft.part").exists()


def test_stale_lock_is_taken_over(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LOCK).write_text("999999999")  # left by a run that died
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


def test_listing_n_files_rewrites_the_marker_a_constant_number_of_times(tmp_path, monkeypatch):
    """Writing N files costs O(N) marker work: each new file appends one line; the marker is
    rewritten whole only when the folder is opened and closed."""
    from facemap.io import outputs

    rewrites = []
    real = outputs.atomic_write_text
    monkeypatch.setattr(outputs, "atomic_write_text", lambda p, t, **kw: rewrites.append(p) or real(p, t, **kw))
    counts = {}
    for n in (10, 400):
        rewrites.clear()
        with OutputDir(tmp_path / f"o{n}") as out:
            for i in range(n):
                out.file(f"logs/f{i:04d}.csv").write_text("x")
            out.file("logs/f0000.csv")  # named again: listed once
        counts[n] = len(rewrites)
        listed = [ln for ln in (tmp_path / f"o{n}" / MARKER).read_text().splitlines() if not ln.startswith("#")]
        assert listed == [f"logs/f{i:04d}.csv" for i in range(n)]
    assert counts[10] == counts[400] <= 2


def test_a_run_killed_midway_leaves_every_written_file_listed(tmp_path):
    """No close (the process died): the appended lines still list every file, so --clean can
    remove them later, and nothing else."""
    out = OutputDir(tmp_path / "o")
    out.open()
    for i in range(3):
        out.file(f"a{i}.txt").write_text("x")
    out._marker_fh.close()  # as the OS does when the process dies: files closed, the OS lock
    os.close(out._lock_fd)  # released; no close(), so the lock file is left behind
    (tmp_path / "o" / LOCK).write_text("999999999")  # a pid that is not running
    with OutputDir(tmp_path / "o", clean=True) as again:
        assert sorted(p.name for p in again.path.iterdir()) == sorted([LOCK, MARKER])


@pytest.mark.parametrize("odd", ["notes\nx", "para\u2028sep"])
def test_a_line_break_in_an_input_name_never_breaks_the_marker(odd, tmp_path):
    """An input named "notes<newline>x.png" was listed in the marker as two names, "notes" and
    "x.json": --clean then removed a user's file "notes", and (U+2028, too) a rerun refused
    facemap's own outputs as another program's, exit 5. Its outputs are now named without the
    break (notes_x), the marker is read a name a line."""
    import cv2
    import numpy as np

    import infer

    pics, out = tmp_path / "in", tmp_path / "out"
    pics.mkdir()
    out.mkdir()
    cv2.imwrite(str(pics / "plain.png"), np.full((64, 64, 3), 90, np.uint8))
    (pics / "plain.png").rename(pics / f"{odd}.png")
    (out / "notes").write_text("my precious notes\n")
    args = ["--image", str(pics), "--detector", "haar", "--landmarker", "dlib", "-o", str(out), "-q"]
    pytest.importorskip("dlib")
    assert infer.main(args) == 0 and infer.main(args) == 0
    stem = odd.replace("\n", "_").replace("\u2028", "_")
    listed = (out / ".facemap-output").read_text(encoding="utf-8").split("\n")
    assert f"{stem}.json" in listed and "notes" not in listed and "x.json" not in listed
    assert infer.main(["--image", str(pics), "--detector", "haar", "--landmarker", "dlib", "-o", str(out), "-q", "--clean"]) == 5
    assert (out / "notes").read_text() == "my precious notes\n"


def test_an_output_name_too_long_is_one_line_exit_5(tmp_path, capsys):
    """-o with a 256-byte name: "a bug in facemap (OSError: [Errno 36] File name too long)", exit 1."""
    import infer

    out = tmp_path / ("n" * 256)
    with pytest.raises(OutputError, match="cannot use it as the output folder"):
        OutputDir(out).check()
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "x.jpg"), np.full((64, 64, 3), 90, np.uint8))
    assert infer.main(["--image", str(tmp_path / "x.jpg"), "-o", str(out), "--landmarker", "dlib", "-q"]) == 5
    err = capsys.readouterr().err
    assert err.strip().endswith(": cannot use it as the output folder (File name too long); choose another --output"), err
