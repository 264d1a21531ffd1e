"""timeline.png: decision signals, thresholds, labels and events over time (matplotlib, Agg)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from .events import runs
from .labels import LABELS

if TYPE_CHECKING:
    from . import Analysis

_EVENT_COLOURS = {
    "blink": "tab:blue",
    "smile": "tab:green",
    "yawn": "tab:orange",
    "looking_away": "tab:red",
    "wink": "tab:cyan",
    "talking": "tab:olive",
}
# events shaded only on their own panel (index into the axes); the rest on every signal panel
_EVENT_PANEL = {"blink": 0, "wink": 0, "talking": 2}


def timeline_png(result: Analysis, dpi: int = 110) -> bytes:
    """Render the timeline of one analysis and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t_s = result.inputs.timestamp_ms / 1000.0
    sig = result.labelled.signals
    th = result.labelled.thresholds
    face = result.inputs.face
    fig = Figure(figsize=(12, 9), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(5, 1, sharex=True, height_ratios=[1, 1, 1, 1, 1.6])

    def panel(ax, y, name, lines, colour):
        ax.plot(t_s, y, color=colour, lw=1.0, label=name)
        for value, style in lines:
            ax.axhline(value, color="0.3", ls=style, lw=0.8)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)

    panel(
        axes[0],
        sig["eye_level"],
        "eye opening\n(x closed limit)",
        [(1.0, "--"), (th["eyes_open_factor"], ":")],
        "tab:blue",
    )
    panel(axes[1], sig["smile_index"], "smile index\n(IOD)", [(th["smile_on"], "--")], "tab:green")
    panel(axes[2], sig["mouth_level"], "mouth opening\n(x threshold)", [(1.0, "--")], "tab:purple")
    # lip motion on its own scale (speech reaches several times its threshold): right axis
    lips = axes[2].twinx()
    lips.plot(t_s, sig["lip_motion"] / th["talk_on"], color="tab:olive", lw=0.8)
    lips.axhline(1.0, color="tab:olive", ls=":", lw=0.8)
    lips.set_ylabel("lip motion\n(x talking limit)", fontsize=8, color="tab:olive")
    lips.tick_params(axis="y", labelsize=7, colors="tab:olive")
    panel(axes[3], sig["turn"], "head turn\n(x away limit)", [(1.0, "--")], "tab:red")
    axes[3].plot(
        t_s,
        sig["brow_delta"] / th["brow_raise_on"],
        color="tab:brown",
        lw=0.8,
        label="brow raise (x threshold)",
    )
    axes[3].legend(loc="upper right", fontsize=7)

    flags = result.labelled.flags[LABELS].to_numpy().T.astype(float)
    flags[:, ~face] = np.nan
    ax = axes[4]
    edges = (
        np.append(t_s, t_s[-1] + result.duration_ms[-1] / 1000.0) if t_s.size else np.array([0, 1])
    )
    ax.pcolormesh(
        edges,
        np.arange(len(LABELS) + 1),
        np.nan_to_num(flags[:, : t_s.size], nan=0.0),
        cmap="Greys",
        vmin=0,
        vmax=1.4,
        shading="flat",
    )
    ax.set_yticks(np.arange(len(LABELS)) + 0.5, LABELS, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    # no-face frames and events as coloured spans
    ev = result.events
    for kind, colour in _EVENT_COLOURS.items():
        sel = ev[ev["type"] == kind]
        own = _EVENT_PANEL.get(kind)
        for a in axes[:4] if own is None else (axes[own],):
            for s, e in zip(
                sel["start_ms"].to_numpy() / 1000.0, sel["end_ms"].to_numpy() / 1000.0, strict=True
            ):
                a.axvspan(s, e, color=colour, alpha=0.15, lw=0)
    starts, ends = runs(~face)  # frames without a face: grey
    end_s = t_s + result.duration_ms / 1000.0
    for a in axes:
        for i, j in zip(starts, ends, strict=True):
            a.axvspan(t_s[i], end_s[j - 1], color="0.5", alpha=0.25, lw=0)
    base = result.baseline
    if base.frames and not base.against_typical:  # the neutral reference frames: gold
        starts, ends = runs(np.isin(result.inputs.frames, base.frames))
        for a in axes:
            for i, j in zip(starts, ends, strict=True):
                a.axvspan(t_s[i], end_s[j - 1], color="gold", alpha=0.25, lw=0)
    s = result.scores
    fig.suptitle(
        f"overall {s.overall_score:.1f}  |  positivity {s.positivity:.1f}  expressiveness "
        f"{s.expressiveness:.1f}  attention {s.attention:.1f}\n(shaded: blinks blue, winks cyan, "
        "smiles green, talking olive, yawns orange, looking away red, no face grey, baseline (neutral) frames gold)",
        fontsize=9,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
