"""Reading images: odd formats converted, broken files refused with one line, EXIF honoured."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facemap.backends import make_detector
from facemap.errors import InputFileError
from facemap.io.images import collect_images, header_size, read_image, unique_stems


def _save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


@pytest.mark.parametrize(
    ("name", "make", "shape"),
    [
        ("one.png", lambda: np.full((1, 1, 3), 9, np.uint8), (1, 1, 3)),
        ("gray.png", lambda: np.full((20, 30), 9, np.uint8), (20, 30, 3)),
        ("rgba.png", lambda: np.full((20, 30, 4), 9, np.uint8), (20, 30, 3)),
    ],
)
def test_odd_formats_become_bgr_uint8(tmp_path, name, make, shape):
    img = read_image(_save(tmp_path / name, make()))
    assert img.shape == shape and img.dtype == np.uint8


def test_16_bit_png(tmp_path):
    arr = np.full((10, 12, 3), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), arr)
    img = read_image(tmp_path / "deep.png")
    assert img.dtype == np.uint8 and img.shape == (10, 12, 3)
    assert abs(int(img[0, 0, 0]) - 40000 // 257) <= 1


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red
    img = read_image(tmp_path / "cmyk.jpg")
    assert img.shape == (8, 16, 3)
    b, g, r = img[4, 8].tolist()
    assert r > 200 and g < 80 and b < 80


def test_exif_rotated_photo_is_upright(tmp_path, shared_data):
    upright = cv2.imread(str(shared_data / "images" / "skimage_astronaut.png"))
    face = make_detector("haar").detect(upright)[0]
    stored = np.ascontiguousarray(np.rot90(upright[:, :, ::-1], k=1))  # camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    _save(tmp_path / "phone.jpg", stored, exif=exif, quality=95)
    img = read_image(tmp_path / "phone.jpg")
    assert img.shape == upright.shape
    found = make_detector("haar").detect(img)
    assert len(found) == 1 and found[0].iou(face) > 0.7


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "image file is empty"), (b"not an image at all", "not a readable image")],
)
def test_broken_files(tmp_path, content, needle):
    (tmp_path / "x.jpg").write_bytes(content)
    with pytest.raises(InputFileError, match=needle) as exc:
        read_image(tmp_path / "x.jpg")
    assert "x.jpg" in str(exc.value)


def test_truncated_jpeg(tmp_path, shared_data):
    data = (shared_data / "images" / "fr_obama-720p.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:2000])
    with pytest.raises(InputFileError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputFileError, match="image not found"):
        read_image(tmp_path / "none.jpg")
    with pytest.raises(InputFileError, match="is a folder"):
        read_image(tmp_path)


def _patched_jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(data)


def test_huge_image_refused_before_decoding(tmp_path):
    (tmp_path / "huge.jpg").write_bytes(_patched_jpeg(20000, 20000))
    assert header_size((tmp_path / "huge.jpg").read_bytes()) == (20000, 20000)
    with pytest.raises(InputFileError, match="huge.jpg: image is 20000x20000 pixels"):
        read_image(tmp_path / "huge.jpg")


def test_collect_folder_glob_and_stems(tmp_path):
    for n in ("b.png", "a.jpg", "a.png", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in collect_images([str(tmp_path)])] == ["a.jpg", "a.png", "b.png"]
    assert [p.name for p in collect_images([str(tmp_path / "*.png")])] == ["a.png", "b.png"]
    assert unique_stems(collect_images([str(tmp_path)])) == ["a_jpg", "a_png", "b"]
    with pytest.raises(InputFileError, match="pattern matches no images"):
        collect_images([str(tmp_path / "*.gif")])


def test_folder_skips_hidden_files(tmp_path):
    """macOS leaves "._name.jpg" metadata files on copied folders: not images, not inputs."""
    for n in ("._a.jpg", ".thumb.png", "a.jpg"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in collect_images([str(tmp_path)])] == ["a.jpg"]
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(InputFileError, match="folder holds no images"):
        collect_images([str(tmp_path)])
    assert [p.name for p in collect_images([str(tmp_path / "._a.jpg")])] == ["._a.jpg"]  # named: taken


def test_a_file_named_twice_is_processed_once(tmp_path):
    for n in ("a.jpg", "b.png"):
        (tmp_path / n).write_bytes(b"x")
    got = collect_images([str(tmp_path), str(tmp_path / "a.jpg"), str(tmp_path / "*.png"), str(tmp_path / "." / "b.png")])
    assert [p.name for p in got] == ["a.jpg", "b.png"]
    assert unique_stems(got) == ["a", "b"]
    (tmp_path / "c.jpg").symlink_to(tmp_path / "a.jpg")  # a link under another name: its own input
    assert [p.name for p in collect_images([str(tmp_path / "*.jpg")])] == ["a.jpg", "c.jpg"]


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_size_is_read_from_the_header(lossless):
    """Real WebP files, lossy (VP8) and lossless (VP8L): the size comes from the first chunk."""
    import io

    from PIL import Image

    from facemap.io.images import header_size

    buf = io.BytesIO()
    Image.new("RGB", (321, 123)).save(buf, "WEBP", lossless=lossless)
    assert header_size(buf.getvalue()) == (321, 123)


def test_an_input_that_cannot_be_looked_into_is_one_line(tmp_path, monkeypatch):
    """A folder it may not read (permissions) or a name too long: "a bug in facemap
    (PermissionError ...)" / (OSError: File name too long), exit 1; now the input's line."""
    from pathlib import Path

    from facemap.errors import InputFileError
    from facemap.io.images import collect_images

    with pytest.raises(InputFileError, match=r"cannot read it \(File name too long\); check its permissions and the path"):
        collect_images([str(tmp_path / ("n" * 256))])
    locked = tmp_path / "locked"
    locked.mkdir()

    def refused(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refused)
    with pytest.raises(InputFileError, match=rf"^{locked}: cannot read it \(Permission denied\)"):
        collect_images([str(locked)])
