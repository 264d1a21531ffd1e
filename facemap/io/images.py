"""Reading still images and collecting inputs: paths, folders and globs -> checked files."""

from __future__ import annotations

import glob
import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputFileError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
# Refuse to decode images above this many pixels (about 24 000 x 24 000 would need 1.7 GB as BGR).
MAX_PIXELS = 100_000_000


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG, JPEG or WebP header without decoding pixels; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas of a WebP file from its first chunk (VP8X, VP8 lossy or VP8L lossless)."""
    kind = data[12:16]
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _pillow_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header of any format Pillow knows (TIFF, BMP, WebP, PNM, ...),
    read lazily (no pixels decoded); None when Pillow cannot tell."""
    try:
        from PIL import Image
    except ImportError:
        return None
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the size is what we want
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:  # not an image Pillow knows, or a broken header: OpenCV decides
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def check_image_file(path: Path, max_pixels: int = MAX_PIXELS) -> None:
    """Check an image file before any model is looked for: it exists, is not empty, can be
    read, its header names a size within ``max_pixels`` (a file whose header no reader knows is
    decoded once to tell), and it decodes to the end (a truncated JPEG with a good header is
    caught here; JPEGs are decoded at 1/8 scale, about a third of a full decode's time).
    InputFileError, one line naming the file, when not."""
    path = Path(path)
    if not path.exists() or path.is_dir() or path.stat().st_size == 0:
        read_image(path, max_pixels)  # its one-line refusals
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the image ({exc.strerror or exc}); check its permissions") from None
    dims = header_size(head) or _pillow_size(path)
    if dims is None or dims[0] * dims[1] > max_pixels or 0 in dims:
        read_image(path, max_pixels)  # decodes it, or says why it cannot
        return
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
        whole = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None
    except (OSError, cv2.error):
        whole = False
    if not whole:
        read_image(path, max_pixels)  # its one-line refusal (or the file reads in full after all)


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 BGR, EXIF orientation applied.

    Grayscale, RGBA, 16-bit and CMYK files are converted. Raises InputFileError with one line
    naming the file when it is missing, empty, not an image, or too large.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: image not found; check the path")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder; pass image files, or the folder with {{image}} DIR")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(f"{path}: image file is empty (0 bytes); copy it again")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the image ({exc.strerror or exc}); check its permissions") from None
    dims = header_size(data[: 1 << 16].tobytes()) or _pillow_size(path)
    if dims is not None and dims[0] * dims[1] > max_pixels:
        raise InputFileError(
            f"{path}: image is {dims[0]}x{dims[1]} pixels, above the {max_pixels // 1_000_000} MP "
            "limit; downscale it first"
        )
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()[-1][:120]
        raise InputFileError(f"{path}: cannot decode image ({msg}); is it a complete image file?") from None
    if image is None:
        if path.suffix.lower() in (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"):
            raise InputFileError(f"{path}: is a video; pass it with {{video}}")
        raise InputFileError(
            f"{path}: not a readable image (truncated, or not an image format OpenCV reads); "
            "re-export it as JPEG or PNG"
        )
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise InputFileError(
            f"{path}: image is {w}x{h} pixels, above the {max_pixels // 1_000_000} MP limit; "
            "downscale it first"
        )
    return image


def collect_files(inputs: list[str], extensions: tuple[str, ...], kind: str) -> list[Path]:
    """Expand paths, folders (their ``kind`` files, sorted) and glob patterns into file paths.

    ``kind`` is "image", "video" or "image or video", for the messages. A path that does not
    exist is an error.
    """
    kinds = " or ".join(f"{k}s" for k in kind.split(" or "))  # images or videos
    paths: list[Path] = []
    for item in inputs:
        try:
            paths += _expand(item, extensions, kind, kinds)
        except OSError as exc:  # a folder it may not read or look into, a name too long
            raise InputFileError(f"{exc.filename or item}: cannot read it ({exc.strerror or exc}); check its "
                                 "permissions and the path") from None
    seen: set[str] = set()  # a file named twice (a folder and a file in it, overlapping globs): once;
    unique = []  # symlinks are not followed: two links to one clip are two inputs
    for path in paths:
        key = os.path.normpath(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _expand(item: str, extensions: tuple[str, ...], kind: str, kinds: str) -> list[Path]:
    """One input of ``collect_files``: a folder's files, a pattern's matches, or the file."""
    paths: list[Path] = []
    p = Path(item)
    if p.is_dir():
        found = sorted(  # hidden files (macOS "._x.jpg" copies, ...) skipped, as a glob's * does
            f
            for f in p.iterdir()
            if f.is_file() and f.suffix.lower() in extensions and not f.name.startswith(".")
        )
        if not found:
            raise InputFileError(
                f"{p}: folder holds no {kinds} ({', '.join(extensions[:4])}, ...); check the path"
            )
        paths.extend(found)
    elif not p.exists() and any(ch in item for ch in "*?["):
        found = sorted(Path(f) for f in glob.glob(item) if Path(f).suffix.lower() in extensions)
        if not found:
            raise InputFileError(f"{item}: pattern matches no {kinds}; check the pattern")
        paths.extend(found)
    elif not p.exists():
        raise InputFileError(f"{p}: {kind} not found; check the path")
    else:
        paths.append(p)
    return paths


def collect_images(inputs: list[str]) -> list[Path]:
    """Image paths from files, folders and globs."""
    return collect_files(inputs, IMAGE_EXTENSIONS, "image")


_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # what ends a line somewhere (str.splitlines, terminals)


def _one_line_name(stem: str) -> str:
    """``stem`` with line breaks and control characters as ``_``: an output's name is one line
    in the folder's marker, the logs and the messages."""
    return _BREAKS.sub("_", stem)


def unique_stems(paths: list[Path]) -> list[str]:
    """Output stems for ``paths``: the file stem (shortened when too long for the output names,
    ``schema.short_stem``, with a note), made unique when two inputs share one."""
    from .schema import short_stem

    stems = [short_stem(_one_line_name(p.stem)) for p in paths]
    for p, s in zip(paths, stems, strict=True):
        if s != p.stem:
            why = "holds a line break or control character" if _one_line_name(p.stem) != p.stem else "is too long for the output names"
            log.warning("%r: its name %s; its outputs are named %s", str(p), why, s)
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    out: list[str] = []
    used: set[str] = set()
    for p, s in zip(paths, stems, strict=True):
        cand = s if counts[s] == 1 else f"{s}_{p.suffix.lstrip('.').lower() or 'file'}"
        base, i = cand, 2
        while cand in used:
            cand = f"{base}_{i}"
            i += 1
        used.add(cand)
        out.append(cand)
    return out
