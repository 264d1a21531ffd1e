"""facemap: run Qualcomm's FaceMap 3DMM face model (or dlib's) locally on images, videos and cameras.

    import facemap

    with facemap.open("dlib") as fm:                 # or facemap.open("facemap", model=..., basis_dir=...)
        for frame in fm.process("clip.mp4"):         # image, folder, glob, video, camera index, arrays
            for face in frame.faces:                 # an empty tuple when there is no face
                print(frame.index, frame.timestamp_ms, face.box, face.pose, face.landmarks.shape)

``open`` loads the backends once and returns a ``FaceMap``; ``FaceMap.process`` yields one
``Frame`` per picture or video frame, handing each to the sinks given (``facemap.sinks``:
CSV logs, overlay video, overlay image + JSON, preview window, or any callable). ``Mode``
says how frames are treated (IMAGE: each on its own; VIDEO: tracked, guarded, smoothed for
drawing: ``Face.landmarks`` stay the landmarker's, ``Face.smoothed`` rides beside).

The package never loads a model at import time, never prints and never exits; errors are
``FacemapError`` subclasses (``facemap.errors``), each with a one-line message and an exit code.

``analyze(source, landmarker)`` runs a picture or a video through the chain and the expression
analyzer and returns one pandas DataFrame (a row per frame and face: box, pose, landmarks,
labels, measures; events in ``df.attrs["events"]``); ``open(..., analyze=True)`` labels the
faces as they come. ``load_logs(folder, stem)`` joins one clip's logs (and the analyzer's expressions.csv) on frame
into one pandas DataFrame with unambiguous column names (``box_x0``, ``lm_x0``, ...).
"""

from __future__ import annotations

from ._version import __version__
from .api import DetectorOptions, FaceMap, open
from .draw import DrawStyle, annotate, draw_overlay
from .errors import FacemapError
from .logs import load_logs
from .pipeline import Options, StopRun
from .tables import analyze
from .track.guard import GuardOptions
from .track.smooth import SmoothOptions
from .track.tracker import TrackOptions
from .types import BBox, Event, Face, Frame, Mode, Pose, Status

__all__ = [
    "BBox",
    "DetectorOptions",
    "DrawStyle",
    "Event",
    "Face",
    "FaceMap",
    "FacemapError",
    "Frame",
    "GuardOptions",
    "Mode",
    "Options",
    "Pose",
    "SmoothOptions",
    "Status",
    "StopRun",
    "TrackOptions",
    "__version__",
    "analyze",
    "annotate",
    "draw_overlay",
    "load_logs",
    "open",
]
