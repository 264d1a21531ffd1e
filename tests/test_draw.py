"""Overlays: full resolution, pure, landmarks drawn where they are."""

from __future__ import annotations

import re

import numpy as np
import pytest

from facemap.cli.config import cli_message
from facemap.draw import MAX_POINT_SIZE, MESH_EDGES, DrawStyle, draw_overlay
from facemap.errors import UsageError
from facemap.types import BBox, Face, Pose, Status


def _face_result(w=640, h=480):
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lm = np.stack([w / 2 + 100 * np.cos(t), h / 2 + 120 * np.sin(t)], -1)
    return Face(
        frame=1, status=Status.OK, box=BBox.from_points(lm), landmarks=lm, pose=Pose(1, 2, 3)
    )


def test_overlay_keeps_size_and_input():
    img = np.zeros((480, 640, 3), np.uint8)
    out = draw_overlay(img, _face_result())
    assert out.shape == img.shape and out.dtype == np.uint8
    assert img.max() == 0  # pure: the input is untouched
    assert out.max() > 0


def test_points_are_drawn_at_landmarks():
    img = np.zeros((480, 640, 3), np.uint8)
    r = _face_result()
    out = draw_overlay(img, r, DrawStyle(point_size=3, contours=False, box=False))
    for x, y in r.landmarks.round().astype(int)[::7]:
        assert out[y, x].tolist() == [0, 255, 0]
    assert out[240, 320].tolist() == [0, 0, 0]  # nothing in the middle


def test_mesh_and_hud_add_pixels():
    img = np.zeros((480, 640, 3), np.uint8)
    plain = draw_overlay(img, _face_result(), DrawStyle(box=False))
    rich = draw_overlay(img, _face_result(), DrawStyle(box=False, mesh=True, hud=True))
    assert (rich.any(-1)).sum() > (plain.any(-1)).sum()
    assert rich[:20, :200].any()  # the HUD band
    assert MESH_EDGES.shape[1] == 2 and MESH_EDGES.max() == 67


def test_no_face_draws_nothing_but_hud():
    img = np.full((100, 100, 3), 7, np.uint8)
    out = draw_overlay(img, Face.empty(3), DrawStyle())
    assert (out == img).all()


def test_grayscale_input_gives_colour_overlay():
    out = draw_overlay(np.zeros((480, 640), np.uint8), _face_result())
    assert out.shape == (480, 640, 3)


@pytest.mark.parametrize("size", [-3, -1, MAX_POINT_SIZE + 1])
def test_point_size_out_of_range_is_a_usage_error(size):
    with pytest.raises(UsageError) as err:
        DrawStyle(point_size=size)
    assert re.search(f"--point-size must be 0 .* got {size}", cli_message(err.value))


@pytest.mark.parametrize("size", [0, 1, MAX_POINT_SIZE])
def test_point_size_in_range_draws(size):
    out = draw_overlay(np.zeros((480, 640, 3), np.uint8), _face_result(), DrawStyle(point_size=size))
    assert out.max() > 0


@pytest.mark.parametrize("width", [256, 320, 480])
def test_hud_fits_a_narrow_frame(width):
    """The HUD line (frame, status, pose, fps) shrinks to the frame's width instead of being cut off."""
    img = np.full((width, width, 3), 255, np.uint8)
    r = _face_result(width, width)
    out = draw_overlay(img, r, DrawStyle(box=False, contours=False, point_size=1, hud=True), fps=123.4)
    band = (out[:4] == 0).all(-1)  # the HUD's black band, above the face
    assert band[:, :8].all()
    assert not band[:, -4:].any()  # it ends inside the frame, so the text does too
