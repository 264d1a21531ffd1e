"""The logs do not move when the code is reorganised (issue 21): infer.py's logs on real media,
one face and several, hashed byte for byte against those of the commit before the one-path
refactor (6c3ae36). A change that moves a result must change these hashes on purpose: issue 25's
dlib box model (a followed face's next box is the one dlib's detector would give its points)
moved the video cases' landmarks and meta logs, and so did the face's own motion leading that
box (optical flow of its rigid points); the pictures' stayed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import infer
from facemap.io.schema import RUN_INFO_SUFFIX
from tests.conftest import need_shared
from tests.standins import DATA

pytest.importorskip("dlib")

DLIB = ["--landmarker", "dlib", "--detector", "dlib-hog", "--dump-csv", "--dump-landmarks-csv", "-q"]

# sha256 of every file infer.py wrote under logs/ (and the pictures' JSON), by relative path
EXPECTED: dict[str, dict[str, str]] = {
    "dpe_s": {
        "logs/dpe_s_landmarks.csv": "987b3e872d1d21c4a1ad4a6255ea47df8427858b3b38770ca5925ad55936191b",
        "logs/dpe_s_meta.csv": "dc47c022d9eae7decc120c2999449c270fb3ae2ad7e24f08c4774e62f2a1fbed",
        "logs/dpe_s_raw.csv": "cdd308aa082e46d6bbd6d2a3f94f2b8ca8200667cba87358e5d173b5a91037ca",
        "logs/dpe_s_summary.csv": "c80eddf4507ca262625d67c38f7b5831a9df9022c2e7bea0412d0423828fdca2",
    },
    "lp_d0": {
        "logs/lp_d0_landmarks.csv": "03abc123594260c2d7ee15d42d8586d70f61dc4543541b2ef953ba3c92e81ffb",
        "logs/lp_d0_meta.csv": "9134d3a2690af770d041f30cf1429b625ce5680d2fbd8e062d4bf45a7b1162d3",
        "logs/lp_d0_raw.csv": "cdd308aa082e46d6bbd6d2a3f94f2b8ca8200667cba87358e5d173b5a91037ca",
        "logs/lp_d0_summary.csv": "1a8cad0dfa715c9569cdf17e15d0bfed5e85ee663581dd074471cd118db7fb96",
    },
    "photos_all_faces": {
        "dlib_bald_guys.json": "fab3915e74b6effbce85139b712ecf9702499ebdfee2a22df2b51b3d3d9e6a6c",
        "fr_two_people.json": "fbb5351f8f690d32083b4dce20c9b1be923ba5a0ef5b6d7bee5dad8db4a4d6a7",
        "logs/dlib_bald_guys_landmarks.csv": "31ffab935722663334207b05e1644088cca78d7dfe739b2caeb0bbb9a2607d98",
        "logs/dlib_bald_guys_meta.csv": "956c2f6d186e428fd8878d3405221c3a1c5261d00565890a19889d17b99e20d1",
        "logs/dlib_bald_guys_raw.csv": "b3c9760b430bb0ea3290ed58bc10a34c0412c6f70a5de9b7ab51e0b4ed707d7e",
        "logs/dlib_bald_guys_summary.csv": "04b720f8111aa3e97b7e092fa6c2cd9ac6d728bd6124ac5e1b109ab5626252ba",
        "logs/fr_two_people_landmarks.csv": "73468fb25d19f666fc80ab5e2b2cfae665e4801f2e73b3d7c63629885462553e",
        "logs/fr_two_people_meta.csv": "11e5286efcf882763ae6ec331ac1406365c52ad630ee9f5c4698b7ea7a050e8a",
        "logs/fr_two_people_raw.csv": "b3c9760b430bb0ea3290ed58bc10a34c0412c6f70a5de9b7ab51e0b4ed707d7e",
        "logs/fr_two_people_summary.csv": "871ce43c78f24a8018ff853fa666902eddf8eb36fa709ce09feb4a8e8096167a",
    },
    "two_face_clip_all": {
        "logs/two_landmarks.csv": "38ba21aa7fb4783b62e52babfc62e0cd602fac4b9b4217024ce0e1cda71a54cb",
        "logs/two_meta.csv": "0e9dd461fbd6a2868d93127c03df1a8a947478fbf8281bd6387d766cc7982f95",
        "logs/two_raw.csv": "b3c9760b430bb0ea3290ed58bc10a34c0412c6f70a5de9b7ab51e0b4ed707d7e",
        "logs/two_summary.csv": "3c0951b9275c46feadda09085c172334f5c8486ee7c821ae10d5891b208165af",
    },
    "two_face_clip_one": {
        "logs/two_landmarks.csv": "d3ba504436aa2aeda5ec58876b4e2be2f52fbf10b5595dc03626e8626ffe97f5",
        "logs/two_meta.csv": "5b0699adc45fcb340a4b24fdc0f94f4468e4ee65020ff161e1a363d04d4b7256",
        "logs/two_raw.csv": "cdd308aa082e46d6bbd6d2a3f94f2b8ca8200667cba87358e5d173b5a91037ca",
        "logs/two_summary.csv": "559d519ba8b2fa12a6cfd61c72e7476c64349330a01aa11dc1b7b431ae2cf9cb",
    },
}


# What made the outputs (facemap.provenance.run_info: SHA-256s, machine paths, settings): in a
# picture's JSON and logs/<stem>_run.json since issue 23, checked in tests/test_report_provenance.py;
# not results, so left out here.
_MADE_BY = ("model_sha256", "model_data_sha256", "detector_model", "detector_model_sha256", "basis_sha256",
            "settings")


def _content(path: Path) -> bytes:
    """The file's bytes; a picture's JSON with its paths (the image, dlib's predictor) cut to
    the file's name (where the checkout and site-packages are differs between machines) and
    without the record of what made it."""
    if path.suffix != ".json":
        return path.read_bytes()
    doc = json.loads(path.read_text())
    for key in _MADE_BY:
        doc.pop(key, None)
    for key in ("image", "predictor", "model"):
        if isinstance(doc.get(key), str):
            doc[key] = Path(doc[key]).name
    return json.dumps(doc, sort_keys=True).encode()


def _hashes(out: Path) -> dict[str, str]:
    files = sorted(p for p in out.rglob("*") if p.is_file() and (p.suffix in (".csv", ".json"))
                   and not p.name.endswith(RUN_INFO_SUFFIX))
    return {p.relative_to(out).as_posix(): hashlib.sha256(_content(p)).hexdigest() for p in files}


def _clip(name: str, frames: int) -> list[np.ndarray]:
    import av

    with av.open(str(need_shared(DATA / "videos" / name))) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="bgr24"))
            if len(out) == frames:
                break
        return out


@pytest.fixture(scope="module")
def two_face_clip(tmp_path_factory) -> Path:
    """dpe_s left and dagan_driving right for 150 frames: the right face covered on frames
    41-60, the two swapping sides at frame 101 (a cut). Encoded losslessly on one thread, so the
    frames read back are the same on every machine."""
    import av

    a, b = _clip("dpe_s.mp4", 150), _clip("dagan_driving.mp4", 150)
    frames = []
    for i in range(150):
        right = b[i].copy()
        if 40 <= i < 60:
            right[40:220, 60:200] = 40
        frames.append(np.hstack([a[i], right] if i < 100 else [b[i], a[i]]))
    path = tmp_path_factory.mktemp("twoface") / "two.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb", rate=25, options={"qp": "0", "threads": "1"})
        s.width, s.height, s.pix_fmt = 512, 256, "bgr24"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


CASES = {
    "lp_d0": lambda clip: ["--video", str(DATA / "videos" / "lp_d0.mp4")],
    "dpe_s": lambda clip: ["--video", str(DATA / "videos" / "dpe_s.mp4")],
    "photos_all_faces": lambda clip: [
        "--image", str(DATA / "images" / "fr_two_people.jpg"), str(DATA / "images" / "dlib_bald_guys.jpg"),
        "--max-faces", "0",
    ],
    "two_face_clip_all": lambda clip: ["--video", str(clip), "--max-faces", "0"],
    "two_face_clip_one": lambda clip: ["--video", str(clip)],
}


def run_case(name: str, clip: Path, out: Path) -> dict[str, str]:
    """infer.py's logs for one case, hashed."""
    need_shared(DATA / "videos")
    assert infer.main([*CASES[name](clip), *DLIB, "-o", str(out)]) == 0
    return _hashes(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_logs_are_byte_identical_to_before_the_refactor(name, two_face_clip, tmp_path):
    got = run_case(name, two_face_clip, tmp_path / "out")
    assert got == EXPECTED[name]
