"""Crop + resize as one affine warp: matches cv2.resize, pads off-image, maps back exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facemap.cli.config import cli_message
from facemap.errors import UsageError
from facemap.preprocess import CropTransform, Preprocessor
from facemap.threedmm.decode import model_to_image
from facemap.types import BBox


def _image(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_margin_enlarges_box_like_qualcomm():
    pre = Preprocessor(margin=0.1)
    box = pre.crop_box(BBox(100, 50, 199, 149))  # 100 x 100 inclusive
    assert box.as_tuple() == pytest.approx((90.0, 40.0, 209.0, 159.0))
    assert box.width == pytest.approx(120.0)


def test_in_image_crop_matches_cv2_resize():
    img = _image()
    pre = Preprocessor(margin=0.0, bgr=True, normalize="none")
    x, _ = pre.crop(img, BBox(40, 30, 239, 229))
    ref = cv2.resize(img[30:230, 40:240], (128, 128), interpolation=cv2.INTER_LINEAR)
    diff = np.abs(x.transpose(1, 2, 0) - ref.astype(np.float32))
    assert diff.mean() < 0.5 and diff.max() <= 3


def test_off_image_box_is_padded_not_shifted():
    img = np.full((100, 100, 3), 200, np.uint8)
    pre = Preprocessor(margin=0.0, normalize="none")
    x, t = pre.crop(img, BBox(-100, 0, 99, 99))  # left half of the box is off the image
    assert t.box.x0 == -100  # not clamped
    assert x[:, :, :60].max() == 0  # padding on the left
    assert x[:, :, 70:].min() == 200  # the image on the right


def test_rgb_by_default_and_bgr_on_request():
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    rgb, _ = Preprocessor(margin=0.0).crop(img, BBox(0, 0, 63, 63))
    bgr, _ = Preprocessor(margin=0.0, bgr=True).crop(img, BBox(0, 0, 63, 63))
    assert rgb.shape == (3, 128, 128) and rgb.dtype == np.float32
    assert rgb[0].min() == pytest.approx(1.0) and rgb[2].max() == 0.0
    assert bgr[2].min() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mode", "lo", "hi"), [("none", 0.0, 255.0), ("0_1", 0.0, 1.0), ("-1_1", -1.0, 1.0)]
)
def test_normalizations(mode, lo, hi):
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255
    x, _ = Preprocessor(margin=0.0, normalize=mode).crop(img, BBox(0, 0, 63, 63))
    assert x.min() == pytest.approx(lo) and x.max() == pytest.approx(hi)


def test_nhwc_layout_and_bad_options():
    x, _ = Preprocessor((96, 112), layout="NHWC").crop(_image(), BBox(10, 10, 100, 100))
    assert x.shape == (96, 112, 3)
    with pytest.raises(UsageError) as err:
        Preprocessor(normalize="zscore")
    assert "--normalize" in cli_message(err.value)
    with pytest.raises(UsageError) as err:
        Preprocessor(margin=-0.5)
    assert "--face-margin" in cli_message(err.value)


def test_bright_dot_maps_back_to_its_image_position():
    """A dot drawn in the image is found in the crop, and the landmark map puts it back."""
    img = np.zeros((400, 600, 3), np.uint8)
    cv2.circle(img, (331, 207), 3, (255, 255, 255), -1)
    pre = Preprocessor(margin=0.1)
    x, t = pre.crop(img, BBox(250, 120, 449, 319))
    ys, xs = np.nonzero(x[0] > 0.5)
    # the crop's pixel centres are at u + 0.5 in the landmark map's continuous coordinates
    u = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
    back = t.to_image(u)
    assert np.abs(back - [331.5, 207.5]).max() < 1.0


def test_transform_agrees_with_decode_mapping():
    t = CropTransform(BBox(12.5, -30, 211, 170), (128, 128))
    pts = np.random.default_rng(1).uniform(-64, 64, (1, 68, 2))
    via_decode = model_to_image(pts, np.array([t.box.as_tuple()]))
    np.testing.assert_allclose(t.to_image(pts + 64.0), via_decode, atol=1e-9)


coord = st.floats(-2000, 2000, allow_nan=False)
size = st.floats(2, 1500, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(coord, coord, size, size, st.lists(st.tuples(coord, coord), min_size=1, max_size=8))
def test_round_trip_for_random_boxes(x0, y0, w, h, points):
    """Boxes partly or wholly off the image: image -> input -> image to 1e-3 px."""
    t = CropTransform(BBox(x0, y0, x0 + w - 1, y0 + h - 1), (128, 128))
    pts = np.array(points)
    np.testing.assert_allclose(t.to_image(t.to_input(pts)), pts, atol=1e-3)
