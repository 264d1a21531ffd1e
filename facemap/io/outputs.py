"""The output folder: created and marked by facemap, locked while a run writes, cleaned safely.

A folder facemap creates holds a marker file, ``.facemap-output``, listing every file facemap wrote
there (relative paths). ``clean`` empties a folder only when it is empty or when every file in it
is one facemap listed; it refuses the home folder, the working folder, and any folder holding a
repository. A lock file, ``.facemap.lock``, keeps two runs from writing into one folder at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from ..errors import OutputError

log = logging.getLogger(__name__)

MARKER = ".facemap-output"
LOCK = ".facemap.lock"
# a corpus run writes each video into a folder of its own here, renamed into place when done
STAGING = ".facemap-staging"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates its file 0600; the finished file gets the mode open() would give it (0644 under the
# usual umask 022), like the logs and the overlay video. Read once, at import, not per write.
FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); choose a writable output folder") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); free space or choose another {{output}}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str, errors: str = "backslashreplace") -> None:
    """Write UTF-8 text atomically. A file name that is not valid UTF-8 (bytes from a Latin-1
    file system, held as surrogates) is written as ``\\udce9`` escapes, or, with
    ``errors="surrogateescape"``, as its original bytes."""
    atomic_write_bytes(path, text.encode("utf-8", errors))


def atomic_write_json(path: Path, obj: object) -> None:
    """Write JSON (indented, UTF-8) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def written_here(paths: list[Path], folder: Path) -> list[Path]:
    """The files of ``paths`` that facemap wrote into ``folder`` (listed in its marker): the
    overlays and logs of an earlier run, never inputs of a new one."""
    listed = set(OutputDir(folder).listed())
    if not listed:
        return []
    root = os.path.realpath(folder)
    ours = []
    for p in paths:
        rel = os.path.relpath(os.path.join(os.path.realpath(Path(p).parent), Path(p).name), root)
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and Path(rel).as_posix() in listed:
            ours.append(p)
    return ours


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forbidden(folder: Path) -> str | None:
    resolved = folder.resolve()
    home = Path.home().resolve()
    if resolved == home:
        return "it is your home folder"
    if resolved == Path.cwd().resolve():
        return "it is the working folder"
    if resolved == Path(resolved.anchor):
        return "it is a filesystem root"
    if (resolved / ".git").exists():
        return "it holds a repository (.git)"
    if resolved in home.parents:
        return "it contains your home folder"
    return None


def _not_ours(folder: Path, names: list[str]) -> OutputError:
    """The one-line refusal of files in ``folder`` that facemap did not write."""
    if len(names) == 1:
        return OutputError(f"{folder / names[0]}: exists and was not written by facemap; facemap does not "
                           "overwrite it: move it away or choose another {output}")
    return OutputError(f"{folder}: {', '.join(names)} exist and were not written by facemap; facemap does not "
                       "overwrite them: move them away or choose another {output}")


def _looks_like_ours(path: Path) -> bool:
    """A log facemap wrote without listing it (the Python API's sinks before they listed their
    files): a CSV whose header starts with ``frame,``, a run.json naming facemap's version."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if path.suffix == ".csv":
        return head.startswith(b"frame,")
    return path.suffix == ".json" and b'"facemap_version"' in head


def refuse_unlisted(folder: Path, names: list[str]) -> None:
    """Refuse (``_not_ours``) the files of ``names`` in ``folder`` that are there, that its
    marker does not list and that are not facemap's logs by their look: for a sink writing into
    a folder no ``OutputDir`` holds (the Python API's ``CsvLogSink("out", ...)``). Reads the
    marker only; takes no lock."""
    folder = Path(folder)
    listed = set(OutputDir(folder).listed())
    foreign = [n for n in names if n not in listed and ((folder / n).exists() or (folder / n).is_symlink())
               and not _looks_like_ours(folder / n)]
    if foreign:
        raise _not_ours(folder, foreign)


_OPEN_HERE: dict[Path, OutputDir] = {}  # the output folders this process holds open (locked), by resolved path


def list_written(folder: Path, names: list[str], tries: int = 40) -> None:
    """Add the files of ``names`` that are in ``folder`` to its marker, as ``OutputDir`` does
    for its own, so that a later run (``infer.py -o``, ``--clean``) knows facemap wrote them;
    not in a folder no run may use as its output (the working folder, home, a repository: no
    marker is left there). Through the ``OutputDir`` this process holds on it, else under the
    folder's lock (waiting a little for another run's; still held, or the marker cannot be
    written, a warning: the files stay unlisted)."""
    import time

    folder = Path(folder)
    present = [n for n in names if (folder / n).is_file()]
    if not present or _forbidden(folder):
        return
    held = _OPEN_HERE.get(folder.resolve())
    if held is not None:
        for n in present:
            held.record(n)
        return
    for attempt in range(tries):
        out = OutputDir(folder)
        try:
            out.open()
        except OutputError as exc:
            if "another facemap run" not in str(exc) or attempt == tries - 1:
                log.warning("%s; %s not listed as facemap's in %s", exc.render(), ", ".join(present), folder / MARKER)
                return
            time.sleep(0.05)
            continue
        try:
            for n in present:
                out.record(n)
        except OutputError as exc:  # the marker cannot be written (a full disk): the files are in place
            log.warning("%s; %s not listed as facemap's", exc.render(), ", ".join(present))
        finally:
            try:
                out.close()  # saves the marker, releases the lock whatever happens
            except OutputError as exc:
                log.warning("%s; %s not listed as facemap's", exc.render(), ", ".join(present))
        return


class OutputDir:
    """An output folder facemap writes into. Use as a context manager: it locks the folder."""

    def __init__(self, path: Path, clean: bool = False) -> None:
        self.path = Path(path)
        self.clean = clean
        self._written: set[str] = set()
        self._locked = False
        self._created = False
        self._marker_fh = None  # the marker, open for appending while the folder is locked
        self._lock_fd: int | None = None
        self._had_marker = False  # the folder held facemap's marker before this run
        self._made_dirs: list[Path] = []  # subfolders this run created (removed again if left empty)

    # -- lifecycle
    @property
    def locked(self) -> bool:
        """True while this run holds the folder (between ``open`` and ``close``)."""
        return self._locked

    def __enter__(self) -> OutputDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> None:
        """Refuse, with the same one line as ``open``, a folder this run could not use (a file,
        not writable, a ``clean`` that would be refused, a name too long, a parent it may not
        look into), changing nothing: called before any model is looked for."""
        with self._os_errors():
            self._check()

    @contextlib.contextmanager
    def _os_errors(self):
        """An OSError of looking at the folder (ENAMETOOLONG; EACCES on a parent: Path.exists
        raises them) as the one-line OutputError."""
        try:
            yield
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot use it as the output folder ({exc.strerror or exc}); "
                              "choose another {output}") from None

    def _check(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputError(f"{p}: is a file, not a folder; pass a folder as {{output}}")
        if not p.exists():
            parent = p.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{p}: cannot create output folder ({parent} is not writable); choose another {{output}}")
            return
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"{p}: output folder is not writable; choose another {{output}}")
        if self.clean:
            self._clean_refusal()

    def open(self) -> None:
        """Create (or check) the folder, clean it if asked, take the lock."""
        with self._os_errors():
            self._open()

    def _open(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputError(f"{p}: is a file, not a folder; pass a folder as {{output}}")
        existed = p.exists()
        self._created = not existed
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{p}: cannot create output folder ({exc.strerror or exc}); choose another {{output}}") from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"{p}: output folder is not writable; choose another {{output}}")
        self._lock()
        _OPEN_HERE[p.resolve()] = self  # a sink of this process lists its files through this one
        self._had_marker = (p / MARKER).exists()
        try:
            if self.clean and existed:
                self._clean()
            self._written = set(self._read_marker())
            self._save_marker()
            self._open_marker()
        except BaseException:
            self._unlock()
            raise

    def close(self) -> None:
        """Save the manifest (files that exist) and release the lock. A folder this run created
        and left empty (e.g. the input was refused) is removed again."""
        if not self._locked:
            return
        self._close_marker()
        try:
            self._written = {r for r in self._written if (self.path / r).exists()}
            if self._created and not self._written and not self._foreign_files():
                self._unlock()
                with contextlib.suppress(OSError):
                    (self.path / MARKER).unlink()
                self._remove_empty_dirs()
                with contextlib.suppress(OSError):
                    self.path.rmdir()
                return
            for d in sorted(self._made_dirs, key=lambda d: len(d.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()  # only when empty: a folder this run made and wrote nothing into
            if not self._written and not self._had_marker:  # another's folder, nothing written: no marker left
                with contextlib.suppress(OSError):
                    (self.path / MARKER).unlink()
                return
            self._save_marker()
        finally:
            self._unlock()

    # -- files
    def file(self, relative: str) -> Path:
        """Path for a file facemap is about to write (recorded in the marker); parents created."""
        target = self.path / relative
        missing = [d for d in (target.parent, *target.parent.parents) if d.is_relative_to(self.path) and not d.exists()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs += missing
        except OSError as exc:
            raise OutputError(f"{target.parent}: cannot create folder ({exc.strerror or exc})") from None
        rel = target.relative_to(self.path).as_posix()
        if rel not in self._written:
            if target.exists() or target.is_symlink():
                raise _not_ours(self.path, [rel])
            self._written.add(rel)
            self._append_marker(rel)
        return target

    def record(self, relative: str) -> None:
        """List ``relative``, a file facemap has just written here by other means (a sink that
        was given the folder), in the marker."""
        if relative not in self._written:
            self._written.add(relative)
            self._append_marker(relative)

    def refuse_foreign(self, names: list[str]) -> None:
        """Refuse now, before any work, the files of ``names`` that ``file`` would refuse later
        (there, and not written by facemap), naming every one of them."""
        foreign = [n for n in names if n not in self._written and ((self.path / n).exists() or (self.path / n).is_symlink())]
        if foreign:
            raise _not_ours(self.path, foreign)

    def forget(self, relative: str) -> None:
        """Remove ``relative`` if facemap wrote it here earlier (never another program's file)."""
        if relative in self._written:
            with contextlib.suppress(OSError):
                (self.path / relative).unlink()
            self._written.discard(relative)
            self._close_marker()
            self._save_marker()
            self._open_marker()

    def listed(self) -> list[str]:
        """The files the folder's marker lists (readable without opening, or locking, the folder)."""
        return self._read_marker()

    def wrote(self, relative: str) -> bool:
        """True when ``relative`` exists and facemap wrote it here (it is listed in the marker)."""
        return relative in self._written and (self.path / relative).is_file()

    def exists(self, relative: str) -> bool:
        """True when ``relative`` exists in the folder."""
        return (self.path / relative).exists()

    # -- internals
    def _read_marker(self) -> list[str]:
        marker = self.path / MARKER
        try:
            if not marker.exists():  # OSError for a name too long, a parent it may not look into
                return []
            text = marker.read_bytes().decode("utf-8", "surrogateescape")  # names as the OS has them
            # one name a line, split on "\n" only: a name may hold another line separator (U+2028)
            return [ln.strip("\r") for ln in text.split("\n") if ln.strip() and not ln.startswith("#")]
        except (OSError, UnicodeDecodeError):
            return []

    def _open_marker(self) -> None:
        try:
            self._marker_fh = open(self.path / MARKER, "a", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc}); choose another {{output}}") from None

    def _close_marker(self) -> None:
        if self._marker_fh is not None:
            with contextlib.suppress(OSError):
                self._marker_fh.close()
            self._marker_fh = None

    def _append_marker(self, rel: str) -> None:
        """List one more file: a line appended and flushed (O(1); the marker is rewritten
        whole, sorted, only when the folder is opened and closed). A name with a line break
        cannot be one line of it: refused (the CLI's stems have none)."""
        if "\n" in rel or "\r" in rel:
            raise OutputError(f"{self.path / rel!r}: an output's name cannot hold a line break; give it a name without one")
        if self._marker_fh is None:
            self._open_marker()
        try:
            self._marker_fh.write(f"{rel}\n")
            self._marker_fh.flush()
        except OSError as exc:
            raise OutputError(f"{self.path / MARKER}: cannot write ({exc.strerror or exc}); free space or choose another {{output}}") from None

    def _save_marker(self) -> None:
        text = "# written by facemap; --clean removes only the files listed here\n"
        text += "".join(f"{r}\n" for r in sorted(self._written))
        atomic_write_text(self.path / MARKER, text, errors="surrogateescape")

    def _lock(self) -> None:
        """Take the folder's lock: an OS lock (flock) on ``.facemap.lock``, which dies with the
        process that holds it (a crash or kill -9 leaves no lock behind, and a reused pid is
        never mistaken for a run). Where flock is missing (Windows), the pid in the file."""
        if fcntl is None:
            return self._lock_by_pid()
        lock = self.path / LOCK
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc}); choose another {{output}}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise OutputError(
                    f"{self.path}: another facemap run (pid {pid}) is writing here; "
                    "wait for it or choose another {output}"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except OSError:
                same = False
            if not same:  # the holder removed it as we opened it: lock the new file
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            self._lock_fd = fd
            self._locked = True
            return None
        raise OutputError(f"{self.path}: cannot take the lock {LOCK}; remove it if no run is active")

    def _lock_by_pid(self) -> None:
        lock = self.path / LOCK
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid) and pid != os.getpid():
                    raise OutputError(
                        f"{self.path}: another facemap run (pid {pid}) is writing here; "
                        "wait for it or choose another {output}"
                    ) from None
                log.warning("%s: removing a stale lock left by pid %s", self.path, pid or "?")
                with contextlib.suppress(OSError):
                    lock.unlink()
                continue
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc}); choose another {{output}}") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._locked = True
            return
        raise OutputError(f"{self.path}: cannot take the lock {LOCK}; remove it if no run is active")

    def _unlock(self) -> None:
        with contextlib.suppress(OSError):
            if _OPEN_HERE.get(self.path.resolve()) is self:
                del _OPEN_HERE[self.path.resolve()]
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._locked = False

    def _clean(self) -> None:
        present = self._clean_refusal()
        for rel in present:
            (self.path / rel).unlink()
        self._remove_empty_dirs()
        self._written = set()

    def _clean_refusal(self) -> list[str]:
        """The files ``clean`` would remove; OutputError when it must refuse."""
        reason = _forbidden(self.path)
        if reason:
            raise OutputError(f"{self.path}: {{clean}} refused, {reason}; point {{output}} at a folder facemap made")
        present = self._foreign_files()
        listed = self._ours(present)
        foreign = sorted(r for r in present if r not in listed)
        if foreign:
            raise OutputError(
                f"{self.path}: {{clean}} refused, {foreign[0]} was not written by facemap"
                f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; "
                "move it away or choose another {output}"
            )
        return present

    def _foreign_files(self) -> list[str]:
        return [
            f.relative_to(self.path).as_posix()
            for f in self.path.rglob("*")
            if (f.is_file() or f.is_symlink()) and not (f.parent == self.path and f.name in (MARKER, LOCK))
        ]

    def _ours(self, present: list[str]) -> set[str]:
        """The files of ``present`` that facemap wrote: listed in this folder's marker or in
        the marker of the subfolder holding them (another facemap output inside this one, such
        as the analyzer's), and facemap's own temp files of those (``.<name>.part``,
        ``.<name>.<id>.part``) left by a run that was killed."""
        ours = set(self._read_marker())
        for marker in self.path.rglob(MARKER):
            sub = marker.parent
            if sub == self.path:
                continue
            prefix = sub.relative_to(self.path).as_posix() + "/"
            ours |= {prefix + r for r in OutputDir(sub)._read_marker()}
            ours.add(prefix + MARKER)
        ours |= {rel for rel in present if rel.startswith(f"{STAGING}/")}  # left by a killed corpus run
        for rel in present:
            folder, _, name = rel.rpartition("/")
            if not (name.startswith(".") and name.endswith(".part")):
                continue
            inner = name[1:-5]  # .<name>.part (logs, video) or .<name>.<random>.part (atomic writes)
            for target in (inner, inner.rpartition(".")[0]):
                if target and (f"{folder}/{target}" if folder else target) in ours:
                    ours.add(rel)
        return ours

    def _remove_empty_dirs(self) -> None:
        subdirs = [d for d in self.path.rglob("*") if d.is_dir() and not d.is_symlink()]
        for d in sorted(subdirs, key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()


class HoldSignals:
    """Holds Ctrl-C / SIGTERM while a set of outputs is written (a frame's in every sink, a
    video's files and its corpus.csv row, a clip's analysis), then raises it. Reusable; a no-op
    off the main thread (signals are only delivered there)."""

    def __init__(self) -> None:
        self._active = threading.current_thread() is threading.main_thread()
        self._saved: dict[int, object] = {}
        self._pending = False

    def _hold(self, signum: int, frame: object) -> None:
        self._pending = True

    def __enter__(self) -> None:
        if self._active:
            with _blocked():  # both handlers swap as one step: no signal lands between them
                for sig in (signal.SIGINT, signal.SIGTERM):
                    current = signal.getsignal(sig)
                    if current is None:  # not installed from Python (or the interpreter is ending)
                        continue
                    self._saved[sig] = current
                    signal.signal(sig, self._hold)

    def __exit__(self, *exc: object) -> None:
        if self._active:
            saved, self._saved = self._saved, {}
            pending, self._pending = self._pending, False
            with _blocked():  # a signal arriving meanwhile reaches the restored handler after
                for sig, handler in saved.items():
                    with contextlib.suppress(TypeError, ValueError, OSError):
                        signal.signal(sig, handler)
            if pending:
                raise KeyboardInterrupt


@contextlib.contextmanager
def _blocked():
    """SIGINT and SIGTERM held back by the OS for the block (where the platform can), then delivered."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
