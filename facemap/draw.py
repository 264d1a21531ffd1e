"""Drawing: ``annotate(frame, style) -> image`` and ``draw_overlay(image, face, style) -> image``.

Pure: never reads or writes files. A face is drawn with ``Face.drawn`` / ``Face.drawn_pose``: the
smoothed landmarks and pose of video mode when there are, else the landmarker's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import UsageError
from .types import N_LANDMARKS, BBox, Face, Frame, Status

# iBUG-68 contours: (first, last, closed)
CONTOURS = (
    (0, 16, False),  # jaw
    (17, 21, False),  # right brow
    (22, 26, False),  # left brow
    (27, 30, False),  # nose bridge
    (31, 35, False),  # nose bottom
    (36, 41, True),  # right eye
    (42, 47, True),  # left eye
    (48, 59, True),  # outer lips
    (60, 67, True),  # inner lips
)

# A fixed Delaunay triangulation of the 68 points (computed once on a frontal face), so the
# wireframe has the same topology on every frame and nothing is rebuilt per frame.
MESH_TRIANGLES = (
    (0, 1, 17), (0, 17, 18), (1, 2, 36), (1, 17, 36), (2, 3, 48), (2, 31, 41), (2, 31, 48),
    (2, 36, 41), (3, 4, 48), (4, 5, 48), (5, 6, 59), (5, 48, 59), (6, 7, 58), (6, 58, 59),
    (7, 8, 58), (8, 9, 57), (8, 57, 58), (9, 10, 56), (9, 56, 57), (10, 11, 55), (10, 55, 56),
    (11, 12, 64), (11, 55, 64), (12, 13, 54), (12, 54, 64), (13, 14, 54), (14, 15, 45),
    (14, 35, 45), (14, 35, 54), (15, 16, 26), (15, 26, 45), (16, 25, 26), (17, 18, 36),
    (18, 19, 37), (18, 36, 37), (19, 20, 38), (19, 37, 38), (20, 21, 22), (20, 21, 38),
    (20, 22, 23), (21, 22, 27), (21, 27, 39), (21, 38, 39), (22, 23, 43), (22, 27, 42),
    (22, 42, 43), (23, 24, 43), (24, 25, 44), (24, 43, 44), (25, 26, 45), (25, 44, 45),
    (27, 28, 39), (27, 28, 42), (28, 29, 39), (28, 29, 42), (29, 30, 31), (29, 30, 35),
    (29, 31, 39), (29, 35, 47), (29, 42, 47), (30, 31, 32), (30, 32, 33), (30, 33, 34),
    (30, 34, 35), (31, 32, 50), (31, 39, 40), (31, 40, 41), (31, 48, 49), (31, 49, 50),
    (32, 33, 50), (33, 34, 52), (33, 50, 51), (33, 51, 52), (34, 35, 52), (35, 45, 46),
    (35, 46, 47), (35, 52, 53), (35, 53, 54), (36, 37, 41), (37, 38, 40), (37, 40, 41),
    (38, 39, 40), (42, 43, 47), (43, 44, 46), (43, 46, 47), (44, 45, 46), (48, 49, 60),
    (48, 59, 60), (49, 50, 61), (49, 59, 60), (49, 59, 67), (49, 61, 67), (50, 51, 61),
    (51, 52, 63), (51, 61, 62), (51, 62, 63), (52, 53, 63), (53, 54, 64), (53, 55, 63),
    (53, 55, 64), (55, 56, 65), (55, 63, 65), (56, 57, 66), (56, 65, 66), (57, 58, 66),
    (58, 59, 67), (58, 66, 67), (61, 62, 67), (62, 63, 65), (62, 65, 66), (62, 66, 67),
)
MESH_EDGES = np.array(
    sorted({tuple(sorted(e)) for a, b, c in MESH_TRIANGLES for e in ((a, b), (b, c), (a, c))}),
    dtype=np.int64,
)

STATUS_COLORS = {  # BGR
    Status.OK: (80, 220, 80),
    Status.WARN: (0, 200, 255),
    Status.UNSTABLE: (0, 0, 255),
    Status.NO_FACE: (160, 160, 160),
}


MAX_POINT_SIZE = 1000  # pixels; OpenCV refuses negative radii, and a bigger dot hides any face
MAX_LINE_WIDTH = 255  # pixels; OpenCV's limit for a line's thickness


@dataclass(frozen=True)
class DrawStyle:
    """How an overlay looks. ``point_size`` and ``line_width`` 0 mean: scale with the face (about
    1 % of its width, and 1/150 of it). Contours and mesh are drawn on 68-point faces only."""

    point_size: int = 0
    line_width: int = 0
    contours: bool = True
    mesh: bool = False
    box: bool = True
    hud: bool = False
    ids: bool = False  # each face's id by its box (several faces a picture)
    labels: bool = True  # an analysed face's labels and a bar per measure beside its box
    point_color: tuple[int, int, int] = (0, 255, 0)
    contour_color: tuple[int, int, int] = (255, 200, 0)
    mesh_color: tuple[int, int, int] = (200, 200, 200)

    def __post_init__(self) -> None:
        if not 0 <= self.point_size <= MAX_POINT_SIZE:
            raise UsageError(
                f"{{point_size}} must be 0 (scale with the face) to {MAX_POINT_SIZE} pixels, got {self.point_size}"
            )
        if not 0 <= self.line_width <= MAX_LINE_WIDTH:
            raise UsageError(
                f"{{line_width}} must be 0 (scale with the face) to {MAX_LINE_WIDTH} pixels, got {self.line_width}"
            )


# Coordinates beyond this (pixels) are drawn as if there: OpenCV's fixed-point drawing overflows.
MAX_DRAW_COORD = 1 << 22


def _thickness(result: Face, image_shape: tuple[int, ...]) -> int:
    side = max(image_shape[:2])
    ref = min(result.box.width, side) if result.box is not None else side / 4  # a box far off
    # or far bigger than the picture (a --bbox typo) draws like one as big as the picture
    return max(1, int(round(ref / 150.0)))


def draw_overlay(
    image: np.ndarray, result: Face, style: DrawStyle = DrawStyle(), fps: float | None = None
) -> np.ndarray:
    """Return a copy of ``image`` (BGR uint8, any size) with the face of ``result`` drawn on it."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    _draw_face(out, result, style)
    if style.hud:
        _draw_hud(out, result, fps)
    return out


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, inclusive)


def _rect(box: BBox) -> Rect:
    x0, y0, x1, y1 = (int(round(np.clip(v, -MAX_DRAW_COORD, MAX_DRAW_COORD))) for v in box.as_tuple())
    return x0, y0, x1, y1


def _draw_face(out: np.ndarray, result: Face, style: DrawStyle, keep_clear: Sequence[Rect] = ()) -> Rect | None:
    """Draw one face on ``out`` in place; its label panel does not cover ``keep_clear`` (the
    other faces' boxes and panels). Returns the panel's rectangle, None without one."""
    line = style.line_width or _thickness(result, out.shape)
    if result.box is not None and style.box:
        x0, y0, x1, y1 = _rect(result.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), STATUS_COLORS[result.status], line, cv2.LINE_AA)
    drawn = result.drawn
    if result.has_face and np.isfinite(drawn).all():
        shift = 4  # sub-pixel drawing: coordinates in 1/16 px
        pts = np.round(np.clip(drawn, -MAX_DRAW_COORD, MAX_DRAW_COORD) * (1 << shift)).astype(np.int32)
        ibug = len(pts) == N_LANDMARKS  # contours and mesh are iBUG-68's
        if style.mesh and ibug:
            segs = [pts[list(e)] for e in MESH_EDGES]
            width = style.line_width or max(1, line // 2)
            cv2.polylines(out, segs, False, style.mesh_color, width, cv2.LINE_AA, shift)
        if style.contours and ibug:
            closed = [pts[a : b + 1] for a, b, c in CONTOURS if c]
            opened = [pts[a : b + 1] for a, b, c in CONTOURS if not c]
            cv2.polylines(out, opened, False, style.contour_color, line, cv2.LINE_AA, shift)
            cv2.polylines(out, closed, True, style.contour_color, line, cv2.LINE_AA, shift)
        radius = style.point_size or max(1, _thickness(result, out.shape) + 1)
        for p in pts:
            cv2.circle(out, (int(p[0]), int(p[1])), radius << shift, style.point_color, -1, cv2.LINE_AA, shift)
    panel = _draw_labels(out, result, keep_clear) if style.labels else None
    if style.ids and result.box is not None and result.status is not Status.NO_FACE:
        x0, y0 = _rect(result.box)[:2]
        scale = max(0.5, result.box.width / 160.0)
        thick = max(1, int(round(scale * 2)))
        (_, th), _ = cv2.getTextSize(str(result.id), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        org = (x0, max(th + 2, y0 - 6))
        cv2.putText(out, str(result.id), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, str(result.id), org, cv2.FONT_HERSHEY_SIMPLEX, scale, STATUS_COLORS[result.status], thick, cv2.LINE_AA)
    return panel


LABEL_COLOR = (255, 255, 255)  # BGR: the labels of a face whose baseline is trusted
PROVISIONAL_COLOR = (0, 215, 255)  # ... and of one still warming up (judged against the typical face)
BAR_ON, BAR_OFF, BAR_BACK = (80, 220, 80), (200, 200, 200), (60, 60, 60)
BAR_FULL = 2.0  # a measure's bar is full at twice its label's threshold (1.0: the tick)


def _panel_rows(box: BBox, text_height: int, lines: int, bars: int, h: int) -> tuple[int, int]:
    """The first and last row of a label panel of ``lines`` labels and ``bars`` measures at
    text ``text_height`` pixels tall: from the box's top, within the picture."""
    row = int(text_height * 1.6)
    height = lines * row + bars * int(row * 0.8) + 8
    y = int(np.clip(box.y0, 0, max(0, h - height)))
    return y, y + height - 1


def _draw_labels(out: np.ndarray, result: Face, keep_clear: Sequence[Rect] = ()) -> Rect | None:
    """The face's labels (the dominant first), one a line, and one bar per measure, in a dark
    panel beside its box: right of it, or left when the picture (or a rectangle of
    ``keep_clear`` level with the box: another face's box or panel) ends there; where neither
    side has room, smaller, on the wider side (over the box's edge only when the smallest text
    does not fit). Yellow while provisional. Returns the panel's rectangle."""
    if result.box is None or not result.labels:
        return None
    box = result.box
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines = list(result.labels)
    if result.provisional:
        lines[0] += " ~"
    names = list(result.measures)
    h, w = out.shape[:2]
    bx0, _, bx1, _ = _rect(box)
    right, left_edge = bx1 + 6, bx0 - 6

    def layout(scale: float) -> tuple[int, int, int, int, int]:
        thick = max(1, int(round(scale * 2)))
        sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
        tw, th = max(sz[0] for sz in sizes), max(sz[1] for sz in sizes)
        name_w = max([cv2.getTextSize(n[:7], font, scale * 0.7, 1)[0][0] for n in names] + [0])
        bar_w = max(40, int(90 * scale))
        return max(tw, name_w + 6 + bar_w) + 12, thick, th, name_w, bar_w

    # each side ends at the picture's edge or at the nearest rectangle to keep clear level with
    # the panel's rows (at its largest: a smaller panel stays within them; a rectangle
    # overlapping the box across is not beside it: ignored)
    # sized to the box, at most 1.2 on a picture up to 1080 rows and in proportion above (on 4K
    # a 1.2 panel was a few pixels tall on a screen)
    scale = float(np.clip(box.width / 320.0, 0.35, 1.2 * max(1.0, h / 1080.0)))
    width, thick, th, name_w, bar_w = layout(scale)
    end_right, end_left = w, 0
    top, bottom = _panel_rows(box, th, len(lines), len(names), h)
    for x0, y0, x1, y1 in keep_clear:
        if y1 < top or y0 > bottom:
            continue
        if x0 >= bx1:
            end_right = min(end_right, x0 - 2)
        elif x1 <= bx0:
            end_left = max(end_left, x1 + 2)
    room = max(end_right - max(right, 0), min(left_edge, w) - end_left)  # the wider side's

    # where neither side has room, smaller, down to the smallest text
    while width > room and scale > 0.35:
        scale = max(0.35, min(scale * 0.97, scale * room / width * 0.95))
        width, thick, th, name_w, bar_w = layout(scale)

    def clear(x0: int, y0: int, x1: int, y1: int) -> bool:
        return not any(x0 <= r[2] and r[0] <= x1 and y0 <= r[3] and r[1] <= y1 for r in keep_clear)

    while True:  # right of the box, else left, where the picture and keep_clear leave room
        y, y_end = _panel_rows(box, th, len(lines), len(names), h)
        x = next((x for x in (right, left_edge - width)
                  if x >= end_left and x + width <= end_right and clear(x, y, x + width - 1, y_end)), None)
        if x is not None or scale <= 0.35:
            break
        scale = max(0.35, scale * 0.97)  # a rectangle across from the box's side: smaller
        width, thick, th, name_w, bar_w = layout(scale)
    height = y_end - y + 1
    row = int(th * 1.6)
    if x is None:  # no room: on the wider side, over the box's own edge (clipped to the picture)
        x = right if end_right - right >= left_edge - end_left else left_edge - width
    x = int(np.clip(x, 0, max(0, w - width)))
    panel = out[y : y + height, x : x + width]
    panel[:] = (panel * 0.35).astype(out.dtype)  # a dark panel, the face beside it untouched
    color = PROVISIONAL_COLOR if result.provisional else LABEL_COLOR
    for k, line in enumerate(lines):
        cv2.putText(out, line, (x + 6, y + th + 4 + k * row), font, scale, color, thick, cv2.LINE_AA)
    for i, name in enumerate(names):
        cy = y + len(lines) * row + 4 + i * int(row * 0.8)
        bh = max(3, int(row * 0.45))
        cv2.putText(out, name[:7], (x + 6, cy + bh), font, scale * 0.7, BAR_OFF, 1, cv2.LINE_AA)
        bx = x + 6 + name_w + 6
        value = float(result.measures[name])
        value = value if np.isfinite(value) else 0.0  # a measure not known: an empty bar
        fill = int(round(bar_w * float(np.clip(value / BAR_FULL, 0.0, 1.0))))
        cv2.rectangle(out, (bx, cy), (bx + bar_w, cy + bh), BAR_BACK, -1)
        if fill > 0:
            cv2.rectangle(out, (bx, cy), (bx + fill, cy + bh), BAR_ON if value >= 1.0 else BAR_OFF, -1)
        tick = bx + int(round(bar_w / BAR_FULL))
        cv2.line(out, (tick, cy - 1), (tick, cy + bh + 1), LABEL_COLOR, 1)
    return x, y, x + width - 1, y + height - 1


def annotate(frame: Frame, style: DrawStyle = DrawStyle(), fps: float | None = None) -> np.ndarray:
    """A copy of ``frame.image`` with every face of the frame (or its "no face" record) drawn on
    it; with ``style.ids``, each face's id by its box."""
    if frame.image is None:
        raise ValueError(f"frame {frame.index} carries no image to draw on")
    if len(frame.faces) <= 1:
        return draw_overlay(frame.image, frame.result, style, fps)
    out = frame.image.copy() if frame.image.ndim == 3 else cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
    boxes = [_rect(f.box) if f.box is not None else None for f in frame.faces]
    panels: list[Rect] = []  # each face's label panel keeps clear of the other boxes and the panels drawn
    for i, face in enumerate(frame.faces):
        others = [b for j, b in enumerate(boxes) if j != i and b is not None]
        panel = _draw_face(out, face, style, others + panels)
        if panel is not None:
            panels.append(panel)
    if style.hud:
        _draw_hud(out, frame.result, fps)
    return out


def _draw_hud(out: np.ndarray, result: Face, fps: float | None) -> None:
    text = f"#{result.frame} {result.status.value}"
    if result.reason:
        text += f" ({result.reason})"
    p = result.drawn_pose
    if p is not None:
        text += f"  pitch {p.pitch_deg:+.0f} yaw {p.yaw_deg:+.0f} roll {p.roll_deg:+.0f}"
    if fps:
        text += f"  {fps:.1f} fps"
    scale = max(0.5, out.shape[0] / 900.0)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    while tw + 24 > out.shape[1] and scale > 0.25:  # narrow frame: shrink the text rather than cut it off
        scale = max(0.25, scale * 0.9 * (out.shape[1] - 24) / tw)
        thick = max(1, int(round(scale * 2)))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (tw + 16, th + base + 16), (0, 0, 0), -1)
    cv2.putText(out, text, (8, th + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
