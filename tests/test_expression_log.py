"""The expression log (``<stem>_expression.csv``) is one of the run's outputs like the others:
its name is claimed before the run (another program's file of that name is never overwritten),
it is listed among the outputs when written, and a rerun that writes none removes the one an
earlier run of facemap left beside the new logs (they would not belong together)."""

from __future__ import annotations

import pandas as pd

from facemap.cli.commands import infer_main
from facemap.errors import EXIT_OUTPUT
from facemap.io.outputs import MARKER, OutputDir
from tests.conftest import need_shared
from tests.standins import DATA

BASIS = DATA / "basis"
CLIP = DATA / "videos" / "lp_d0.mp4"


def _args(out, *more: str) -> list[str]:
    return ["--video", str(CLIP), "--landmarker", "dlib", "--detector", "dlib-hog", "--max-frames", "4",
            "--dump-csv", "-o", str(out), *more]


def test_another_programs_expression_log_is_never_overwritten(tmp_path, capsys) -> None:
    need_shared(CLIP)
    need_shared(BASIS)
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    theirs = out / "logs" / "lp_d0_expression.csv"
    theirs.write_text("frame,mine\n1,2\n")
    assert infer_main(_args(out, "--basis-dir", str(BASIS))) == EXIT_OUTPUT
    assert theirs.read_text() == "frame,mine\n1,2\n"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lp_d0_expression.csv" in err[0] and "not written by facemap" in err[0], err
    # nothing else was written
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["lp_d0_expression.csv"]


def test_the_expression_log_is_an_output_and_a_rerun_without_it_removes_the_stale_one(tmp_path) -> None:
    need_shared(CLIP)
    need_shared(BASIS)
    out = tmp_path / "out"
    expression = out / "logs" / "lp_d0_expression.csv"
    assert infer_main(_args(out, "--basis-dir", str(BASIS))) == 0
    assert expression.is_file() and len(pd.read_csv(expression)) == 4
    assert "logs/lp_d0_expression.csv" in OutputDir(out).listed()  # facemap's, in the folder's manifest
    # the same clip again without the basis: no measures, so no expression log beside the new logs
    assert infer_main(_args(out)) == 0
    assert not expression.exists()
    raw = pd.read_csv(out / "logs" / "lp_d0_raw.csv")
    assert raw.empty  # dlib without the basis: no params (the header only)
    assert (out / "logs" / "lp_d0_meta.csv").is_file()
    assert "logs/lp_d0_expression.csv" not in OutputDir(out).listed()


def test_a_rerun_of_another_video_under_the_stem_leaves_no_log_of_the_first(tmp_path, capsys) -> None:
    """talk.mp4 run with --dump-landmarks-csv --save-video, then replaced by another clip and run
    without them: the first clip's landmarks log went with it (the analyzer blamed the user for
    two logs of different videos); its overlay is left, and the line says so."""
    need_shared(CLIP)
    talk, out = tmp_path / "talk.mp4", tmp_path / "out"
    talk.write_bytes((DATA / "videos" / "lp_d12.mp4").read_bytes())
    base = ["--video", str(talk), "--landmarker", "dlib", "--detector", "dlib-hog", "--max-frames", "6", "-o", str(out)]
    assert infer_main([*base, "--dump-landmarks-csv", "--save-video", "-q"]) == 0
    overlay = (out / "talk_overlay.mp4").read_bytes()
    talk.write_bytes(CLIP.read_bytes())
    capsys.readouterr()
    assert infer_main([*base, "--max-frames", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ("talk: removed the earlier run's logs/talk_landmarks.csv (not this run's logs); talk_overlay.mp4 is "
            "still the earlier run's") in lines
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["talk_meta.csv", "talk_run.json", "talk_summary.csv"]
    assert (out / "talk_overlay.mp4").read_bytes() == overlay
    assert "logs/talk_landmarks.csv" not in OutputDir(out).listed()


def test_a_users_file_of_an_output_s_name_is_no_earlier_run_to_keep(tmp_path, capsys, monkeypatch) -> None:
    """A run stopped part way keeps an earlier run's outputs in place of its own first frames;
    a file of the user's that merely has an output's name (talk_overlay.mp4, this run writing
    no overlay) is no earlier run: the stopped run keeps its logs, and says nothing of one."""
    from facemap.cli import videos

    need_shared(CLIP)
    out = tmp_path / "out"
    out.mkdir()
    (out / "lp_d0_overlay.mp4").write_bytes(b"the user's own")
    original = videos.for_each

    def stopped_at_5(frames, fn):
        def count(frame):
            fn(frame)
            if frame.index == 5:
                raise KeyboardInterrupt
        original(frames, count)

    monkeypatch.setattr(videos, "for_each", stopped_at_5)
    code = infer_main(["--video", str(CLIP), "--landmarker", "dlib", "--detector", "dlib-hog", "-o", str(out), "-q"])
    assert code == 130 and "earlier run" not in capsys.readouterr().err
    assert len(pd.read_csv(out / "logs" / "lp_d0_meta.csv")) == 5
    assert (out / "lp_d0_overlay.mp4").read_bytes() == b"the user's own"


def test_an_analyze_run_says_nothing_of_earlier_outputs_it_replaced(tmp_path, capsys) -> None:
    """--analyze writes analysis/<stem>/ (reported as the folder): neither its first run nor a
    rerun says its analysis is the earlier run's."""
    need_shared(CLIP)
    base = ["--video", str(CLIP), "--landmarker", "dlib", "--detector", "dlib-hog", "--max-frames", "30", "--analyze",
            "-o", str(tmp_path / "out")]
    for _ in range(2):
        assert infer_main(base) == 0
        assert "earlier run" not in capsys.readouterr().out


def test_a_photos_expression_log_is_claimed_like_its_other_logs(tmp_path) -> None:
    need_shared(BASIS)
    photo = DATA / "images" / "fr_obama-720p.jpg"
    need_shared(photo)
    out = tmp_path / "out"
    args = ["--image", str(photo), "--landmarker", "dlib", "--detector", "dlib-hog", "--dump-csv",
            "--basis-dir", str(BASIS), "-o", str(out)]
    (out / "logs").mkdir(parents=True)
    theirs = out / "logs" / "fr_obama-720p_expression.csv"
    theirs.write_text("theirs\n")
    assert infer_main(args) == EXIT_OUTPUT
    assert theirs.read_text() == "theirs\n"
    # refused whole: no overlay, JSON or other log was written before the claim failed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MARKER) == [
        "logs/fr_obama-720p_expression.csv"
    ]
    theirs.unlink()
    assert infer_main(args) == 0
    assert pd.read_csv(theirs).smile.iloc[0] > 0.3
    assert "logs/fr_obama-720p_expression.csv" in OutputDir(out).listed()
    # again without the basis: no measures, and the first run's expression log is gone with them
    assert infer_main([a for a in args if a not in ("--basis-dir", str(BASIS))]) == 0
    assert not theirs.exists()
    assert (out / "fr_obama-720p.json").is_file() and (out / "logs" / "fr_obama-720p_meta.csv").is_file()
