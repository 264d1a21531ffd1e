"""facemap.io.video: reading (timestamps, ranges, rotation, clean-up) and VideoSink (timing, audio)."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemap.errors import InputFileError
from facemap.io.video import VideoSink, collect_videos, probe, read_frames
from tests.conftest import need_shared
from tests.standins import DATA
from tests.video_fakes import encode_clip

D19 = DATA / "videos" / "lp_d19.mp4"


def _write_pattern(path: Path, n: int = 6, size=(64, 32), rotation: int | None = None, rate: int = 10):
    """A small H.264 video whose left quarter is white; optional display rotation."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if rotation is not None:
            vs.set_display_rotation(rotation)
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : w // 4] = 255
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def _pcm_clip(dst: Path, sound: np.ndarray, rate: int) -> Path:
    """A Matroska clip of black 32x32 frames at 10 fps with ``sound`` (int16 mono at ``rate``)
    as PCM, a frame's worth of samples beside each frame (MP4 cannot hold PCM)."""
    import av

    step = rate // 10
    with av.open(str(dst), "w") as c:
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        aus = c.add_stream("pcm_s16le", rate=rate)
        aus.layout = "mono"
        for i in range(len(sound) // step):
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="bgr24")
            f.pts = i
            for p in vs.encode(f):
                c.mux(p)
            a = av.AudioFrame.from_ndarray(sound[None, i * step : (i + 1) * step], format="s16", layout="mono")
            a.sample_rate, a.pts = rate, i * step
            for p in aus.encode(a):
                c.mux(p)
        for st in (vs, aus):
            for p in st.encode(None):
                c.mux(p)
    return dst


def _decode_stream(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        times = [float(f.pts * vs.time_base) for f in c.decode(vs)]
        out = {"n": len(times), "times": np.array(times), "w": vs.codec_context.width,
               "h": vs.codec_context.height, "codec": vs.codec_context.name,
               "pix_fmt": vs.codec_context.pix_fmt, "audio": bool(c.streams.audio)}
        if c.streams.audio:
            a = c.streams.audio[0]
            out["audio_s"] = float(a.duration * a.time_base) if a.duration else 0.0
        return out


def test_probe_lp_d19():
    need_shared(D19)
    info = probe(D19)
    assert (info.width, info.height, info.frame_count) == (480, 480, 250)
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(250 / 30, abs=0.02)
    assert info.has_audio and info.rotation_deg == 0


def test_read_frames_true_timestamps():
    need_shared(D19)
    frames = [(f.index, f.timestamp_ms, f.image.shape) for f in read_frames(D19)]
    assert len(frames) == 250
    idx = np.array([f[0] for f in frames])
    ts = np.array([f[1] for f in frames])
    np.testing.assert_array_equal(idx, np.arange(1, 251))
    np.testing.assert_allclose(ts, (idx - 1) * 1000 / 30, atol=0.1)
    assert {f[2] for f in frames} == {(480, 480, 3)}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"every": 3, "max_frames": 4}, [1, 4, 7, 10]),
        ({"max_frames": 2}, [1, 2]),
        ({"start_s": 2.0, "max_frames": 3}, [61, 62, 63]),
        ({"start_s": 1.0, "end_s": 1.2}, [31, 32, 33, 34, 35, 36]),
        ({"end_s": 0.1}, [1, 2, 3]),
    ],
)
def test_read_frames_ranges(kwargs, expected):
    need_shared(D19)
    got = list(read_frames(D19, **kwargs))
    assert [f.index for f in got] == expected
    for f in got:
        assert f.timestamp_ms == pytest.approx((f.index - 1) * 1000 / 30, abs=0.1)


def test_read_frames_releases_on_early_stop():
    need_shared(D19)
    gen = read_frames(D19, queue_size=2)
    first = next(gen)
    assert first.index == 1
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "facemap-decode"]


@pytest.mark.parametrize(
    ("rotation", "white_side"),
    [(None, "left"), (90, "bottom"), (-90, "top"), (180, "right")],
)
def test_rotation_metadata_applied(tmp_path, rotation, white_side):
    path = _write_pattern(tmp_path / "rot.mp4", rotation=rotation)
    info = probe(path)
    img = next(read_frames(path)).image[:, :, 0].astype(float)
    h, w = img.shape
    assert (info.width, info.height) == (w, h)
    assert (w, h) == ((32, 64) if rotation in (90, -90) else (64, 32))
    sides = {
        "left": img[:, : w // 8].mean(),
        "right": img[:, -w // 8 :].mean(),
        "top": img[: h // 8].mean(),
        "bottom": img[-h // 8 :].mean(),
    }
    assert max(sides, key=sides.get) == white_side
    assert sides[white_side] > 200


def test_read_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        list(read_frames(tmp_path / "missing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InputFileError, match="not a readable video"):
        probe(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        list(read_frames(empty))


def test_sink_keeps_variable_timing(tmp_path):
    times = [0.0, 0.04, 0.1, 0.25, 0.26, 0.5]  # variable frame rate
    target = tmp_path / "vfr.mp4"
    rng = np.random.default_rng(0)
    with VideoSink(target, 96, 64, 10.0, Fraction(1, 1000)) as sink:
        for t in times:
            sink.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), 100.0 + t)
    assert target.exists() and not (tmp_path / ".vfr.mp4.part").exists()
    got = _decode_stream(target)
    assert (got["n"], got["w"], got["h"]) == (6, 96, 64)
    assert (got["codec"], got["pix_fmt"]) == ("h264", "yuv420p")
    np.testing.assert_allclose(got["times"] - got["times"][0], times, atol=0.002)


def test_sink_odd_size_and_abort(tmp_path):
    target = tmp_path / "odd.mp4"
    with VideoSink(target, 33, 21, 25.0) as sink:
        for i in range(3):
            sink.write(np.full((21, 33, 3), 40 * i, np.uint8), i / 25)
    got = _decode_stream(target)
    assert (got["w"], got["h"], got["n"]) == (32, 20, 3)
    aborted = tmp_path / "aborted.mp4"
    with pytest.raises(RuntimeError), VideoSink(aborted, 32, 32, 25.0) as sink:
        sink.write(np.zeros((32, 32, 3), np.uint8), 0.0)
        raise RuntimeError("stop")
    assert not aborted.exists()
    assert not list(tmp_path.glob(".aborted*"))


def test_sink_copies_audio_cut_to_the_video(tmp_path):
    need_shared(D19)
    info = probe(D19)
    target = tmp_path / "with_audio.mp4"
    with VideoSink(target, info.width, info.height, info.fps, info.time_base, audio_from=D19) as sink:
        for f in read_frames(D19, start_s=1.0, max_frames=60):
            sink.write(f.image, f.time_s)
    got = _decode_stream(target)
    assert got["n"] == 60
    assert got["audio"]
    assert got["audio_s"] == pytest.approx(2.0, abs=0.1)  # 60 frames at 30 fps


@pytest.mark.parametrize("fmt", ["matroska", "webm"])
def test_audio_longer_than_the_video_in_matroska_is_no_truncation(tmp_path, fmt, caplog):
    """Matroska/WebM give no stream duration but a DURATION tag: 1 s of video with 3 s of audio
    is 10 frames, read whole without an "ended early" note (the container's 3 s made it 30
    frames expected and the file "truncated")."""
    import av

    target = tmp_path / f"long_audio.{'mkv' if fmt == 'matroska' else 'webm'}"
    with av.open(str(target), "w", format=fmt) as out:
        vs = out.add_stream("libvpx-vp9" if fmt == "webm" else "libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        aus = out.add_stream("libopus", rate=48000)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), 20 * i, np.uint8), format="bgr24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        for k in range(150):  # 3 s of 20 ms
            af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
            af.sample_rate, af.pts = 48000, k * 960
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    info = probe(target)
    assert info.duration_s == pytest.approx(1.0, abs=0.11) and info.frame_count == pytest.approx(10, abs=1)
    assert len(list(read_frames(target))) == 10


def test_a_damaged_spot_mid_file_is_skipped_and_the_rest_decoded(tmp_path, caplog):
    """Bytes overwritten in the middle of an MP4's data: the packets the decoder refuses are
    skipped with one warning and the frames after the next key frame are read (decoding
    stopped there, half the clip lost and the file called truncated)."""

    target = encode_clip(need_shared(D19), tmp_path / "damaged.mp4", 80, size=256, options={"g": "10", "bf": "0"})
    data = bytearray(target.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 3000] = bytes(range(256)) * 11 + bytes(184)
    target.write_bytes(bytes(data))
    frames = list(read_frames(target))
    assert 60 <= len(frames) < 80, len(frames)  # a key-frame interval or so lost, not half the clip
    assert frames[-1].timestamp_ms == pytest.approx(79 * 40.0)
    notes = [r.getMessage() for r in caplog.records if "damaged data at" in r.getMessage()]
    assert len(notes) == 1 and "skipped, decoding goes on after it" in notes[0]
    # every packet's data overwritten: no damaged spot but an unreadable file, one error (it read as 0 frames)
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(range(256)) * ((size - 8) // 256) + bytes((size - 8) % 256)
    target.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="cannot decode video"):
        list(read_frames(target))


def test_a_join_after_a_part_of_three_frames_is_a_join_not_slips(tmp_path):
    """cat of a 3-frame and a 30-frame MPEG-TS: the clock starts again after 3 frames, within
    the 4 frames a muxing slip may run back; the next frame runs back again, so it is a join
    and the second part follows the first (it ran 120 ms early, its first frames bunched up)."""

    def segment(dst, frames):
        return encode_clip(need_shared(D19), dst, frames, "mpeg2video", "mpegts", size=64).read_bytes()

    joined = tmp_path / "joined.ts"
    joined.write_bytes(segment(tmp_path / "a.ts", 3) + segment(tmp_path / "b.ts", 30))
    times = [f.timestamp_ms for f in read_frames(joined)]
    assert len(times) == 33 and (np.diff(times) > 0).all()
    assert times[-1] >= 32 * 40.0 - 45  # the second part after the first, not over it


def test_start_on_an_mpeg_ts_whose_seek_lands_after_it(tmp_path):
    """MPEG-TS seeks to the next key frame: --start 0.6 on a 1.2 s clip with one key frame gave
    no frame at all. The frames from 0.6 s are read, numbered and timed as a whole read's."""

    target = encode_clip(need_shared(D19), tmp_path / "one_key.ts", 30, "mpeg2video", "mpegts", options={"g": "100"})
    whole = [(f.index, round(f.timestamp_ms)) for f in read_frames(target)]
    part = [(f.index, round(f.timestamp_ms)) for f in read_frames(target, start_s=0.6)]
    assert len(whole) == 30 and part == [x for x in whole if x[1] >= 600]


def test_a_trimmed_mp4_numbers_frames_after_a_seek_as_from_the_start(tmp_path):
    """An MP4 whose first 10 frames are cut by an edit list (a phone app's trim, ffmpeg -ss with
    -c copy): --start 1 --end 1.2 gives the frames the numbers a whole read gives them (the
    pre-roll, decoded but never shown, was counted: frame 26 came out as 36)."""

    target = encode_clip(need_shared(D19), tmp_path / "trimmed.mp4", 60, options={"bf": "0"}, first=-10)
    whole = {round(f.timestamp_ms): f.index for f in read_frames(target)}
    assert len(whole) == 50 and whole[1000] == 26
    part = [(f.index, round(f.timestamp_ms)) for f in read_frames(target, start_s=1.0, end_s=1.2)]
    assert part == [(whole[t], t) for t in (1000, 1040, 1080, 1120, 1160)]


def test_reencoded_audio_keeps_its_place_against_the_video(tmp_path):
    """PCM re-encoded to AAC, the overlay from 1.0 s of the source: a click at 1.5 s in the
    source is heard at 0.5 s in the overlay (the encoder counting from 0 put it 21 ms late,
    and dropped the offset of the first packet kept: up to a packet early)."""
    import av

    rate = 8000
    sound = np.zeros(2 * rate, np.int16)
    sound[int(1.5 * rate) : int(1.5 * rate) + 8] = 20000  # the click
    src = _pcm_clip(tmp_path / "click.mkv", sound, rate)
    target = tmp_path / "out.mp4"
    with VideoSink(target, 32, 32, 10.0, audio_from=src) as sink:
        for f in read_frames(src, start_s=1.0):
            sink.write(f.image, f.time_s)
    with av.open(str(target)) as c:
        frames = list(c.decode(audio=0))
        t0 = float(frames[0].pts * frames[0].time_base)
        x = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
        heard = t0 + np.argmax(np.abs(x)) / frames[0].sample_rate
    assert heard == pytest.approx(0.5, abs=0.003)


def test_the_overlay_is_bt709_and_says_so(tmp_path):
    """The overlay's colours are converted to BT.709 and the stream is tagged so: a player that
    takes untagged HD for BT.709 (most do) showed BT.601 samples shifted (pure green 255 -> 214);
    decoded as BT.709, or by read_frames/OpenCV from the tags, the colours come back."""
    import av
    from av.video.reformatter import Colorspace

    img = np.zeros((720, 1280, 3), np.uint8)
    img[:, :400], img[:, 400:800], img[:, 800:] = (0, 255, 0), (200, 200, 0), (40, 80, 160)
    target = tmp_path / "colours.mp4"
    with VideoSink(target, 1280, 720, 25.0, Fraction(1, 1000)) as sink:
        for i in range(3):
            sink.write(img, i * 0.04)
    with av.open(str(target)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (1, 1, 1, 1)
        frame = next(c.decode(video=0))
        as709 = frame.reformat(format="bgr24", src_colorspace=Colorspace.ITU709).to_ndarray()
    for x in (200, 600, 1000):
        np.testing.assert_allclose(as709[360, x].astype(int), img[360, x].astype(int), atol=4)
        np.testing.assert_allclose(next(iter(read_frames(target))).image[360, x].astype(int), img[360, x], atol=4)


def test_an_anamorphic_video_is_read_with_square_pixels(tmp_path):
    """A 384x512 stream with 4:3 pixels (it plays 512x512) is read and probed as 512x512, as a
    player shows it: the landmarker and the ratios measured on the face see it unsquashed (a
    round mark stays round), and the overlay plays as the source does."""
    import av

    target = tmp_path / "anamorphic.mp4"
    disc = np.full((512, 512, 3), 40, np.uint8)
    cv2.circle(disc, (256, 256), 150, (255, 255, 255), -1)
    with av.open(str(target), "w") as o:
        vs = o.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 384, 512, "yuv420p"
        vs.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for n in range(5):
            frame = av.VideoFrame.from_ndarray(cv2.resize(disc, (384, 512), interpolation=cv2.INTER_AREA), format="bgr24")
            frame.pts = n
            for pkt in vs.encode(frame):
                o.mux(pkt)
        for pkt in vs.encode(None):
            o.mux(pkt)
    info = probe(target)
    assert (info.width, info.height) == (512, 512)
    image = next(iter(read_frames(target))).image
    assert image.shape == (512, 512, 3)
    ys, xs = np.nonzero(image[..., 0] > 150)
    assert xs.max() - xs.min() == pytest.approx(ys.max() - ys.min(), abs=4)  # round, not 225 x 300


def test_collect_videos(tmp_path):
    for name in ("b.mp4", "a.MOV", "notes.txt", "c.MTS", "d.ts", "e.m2ts", "f.flv"):
        (tmp_path / name).write_bytes(b"x")
    # camcorder and stream files too: a folder of .MTS clips held "no videos"
    assert [p.name for p in collect_videos([str(tmp_path)])] == ["a.MOV", "b.mp4", "c.MTS", "d.ts", "e.m2ts", "f.flv"]
    assert [p.name for p in collect_videos([str(tmp_path / "*.mp4")])] == ["b.mp4"]
    with pytest.raises(InputFileError, match="no videos"):
        collect_videos([str(tmp_path / "*.mkv")])


def test_a_repeated_timestamp_moves_its_frame_only(tmp_path, caplog):
    """Frames 11 and 26 of a Matroska file carry the time of the frame before (a muxing slip):
    each is put 1 ms after it, and every other frame keeps its own time (each slip shifted every
    frame after it by a frame, 560 ms over 14 slips in 6 s), with one warning."""
    import av

    src = need_shared(DATA / "videos" / "lp_d0.mp4")
    target = tmp_path / "slips.mkv"
    with av.open(str(src)) as i, av.open(str(target), "w", format="matroska") as o:
        vs = o.add_stream("mjpeg", rate=25)
        vs.width, vs.height, vs.pix_fmt = 128, 128, "yuvj420p"
        pkts = []
        for n, frame in enumerate(i.decode(video=0)):
            if n == 40:
                break
            frame = frame.reformat(width=128, height=128, format="yuvj420p")
            frame.pts, frame.time_base = n, Fraction(1, 25)
            pkts += list(vs.encode(frame))
        pkts += list(vs.encode(None))
        for n, pkt in enumerate(pkts):
            pkt.pts = pkt.dts = n - 1 if n in (10, 25) else n
            o.mux(pkt)
    got = [f.timestamp_ms for f in read_frames(target)]
    want = [40.0 * n for n in range(40)]
    want[10], want[25] = want[9] + 1.0, want[24] + 1.0
    np.testing.assert_allclose(got, want, atol=0.01)
    notes = [r.getMessage() for r in caplog.records if "repeats or runs back" in r.getMessage()]
    assert len(notes) == 1 and "the frame after 0.360 s" in notes[0]


def test_variable_frame_rate_read_back(tmp_path):
    """A VFR file (written by VideoSink) reads back with its true, uneven timestamps."""
    times = [0.0, 0.05, 0.07, 0.3, 0.31, 0.9]
    target = tmp_path / "vfr.mp4"
    with VideoSink(target, 64, 48, 10.0, Fraction(1, 1000)) as sink:
        for t in times:
            sink.write(np.full((48, 64, 3), 128, np.uint8), t)
    got = [f.timestamp_ms for f in read_frames(target)]
    np.testing.assert_allclose(got, np.array(times) * 1000, atol=1.5)


def test_sink_reencodes_audio_mp4_cannot_hold(tmp_path, caplog):
    """PCM audio (a camera's .mov, an .avi; not allowed in .mp4): the overlay gets it as AAC,
    its sound kept (it was written without sound, with a warning)."""
    import av

    tone = (8000 * np.sin(np.arange(4000) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    src = _pcm_clip(tmp_path / "pcm.mkv", tone, 8000)
    target = tmp_path / "out.mp4"
    with VideoSink(target, 32, 32, 10.0, audio_from=src) as sink:
        for f in read_frames(src):
            sink.write(f.image, f.time_s)
    got = _decode_stream(target)
    assert got["n"] == 5 and got["audio"] and got["audio_s"] == pytest.approx(0.5, abs=0.15)
    with av.open(str(target)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert np.sqrt(np.mean(sound**2)) == pytest.approx(8000 / 32768 / np.sqrt(2), rel=0.2)  # the tone, not silence
    assert "no sound" not in caplog.text
