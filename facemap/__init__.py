"""facemap: run Qualcomm's FaceMap 3DMM model locally on images and videos.

The package never loads a model at import time, never prints and never exits;
the two scripts (infer.py, analyze_expressions.py) parse arguments and call it.
"""

from __future__ import annotations

__version__ = "0.1.0"
