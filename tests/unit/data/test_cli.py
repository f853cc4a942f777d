"""``python -m text2sign data synth | import | check`` on every kind, through the real CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from text2sign.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["gif", "mp4", "webm", "frames"])
def test_synth_then_check_every_flat_kind_as_folder_and_manifest(tmp_path, capsys, fmt):
    out = tmp_path / fmt
    code, text, _ = run(capsys, "data", "synth", "--out", str(out), "--num", "12",
                        "--frames", "4", "--size", "16", "--format", fmt, "--signers", "6")  # fmt: skip
    assert code == 0 and f"wrote 12 {fmt} clips" in text
    for root in (out, out / "manifest.csv"):
        code, report, _ = run(capsys, "data", "check", str(root))
        assert code == 0, report
        assert f"samples: 12 ({fmt}: 12; 0 cut)" in report
        assert "signers: 6 (s0: 2, s1: 2" in report
        assert "frames per clip: min 4 / median 4 / max 4" in report
        assert "frame sizes (WxH): 16x16 (12)" in report and "bad entries: 0" in report


def test_synth_how2sign_import_and_check(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text, _ = run(capsys, "data", "synth", "--out", "h2s", "--num", "8", "--frames", "4",
                        "--size", "16", "--format", "how2sign")  # fmt: skip
    assert code == 0 and "How2Sign-shaped" in text
    code, text, _ = run(capsys, "data", "import", "how2sign", "--csv",
                        "h2s/how2sign_realigned_train.csv", "--clips", "h2s/rgb_front_clips")  # fmt: skip
    assert (
        code == 0
        and text == "wrote how2sign.csv: 8 rows (use it as data.root; nothing was copied)\n"
    )
    code, report, _ = run(capsys, "data", "check", "how2sign.csv")
    assert code == 0 and "samples: 8 (mp4: 8; 0 cut)" in report
    # An existing manifest is not replaced without --force.
    code, _, err = run(capsys, "data", "import", "how2sign", "--csv",
                       "h2s/how2sign_realigned_train.csv", "--clips", "h2s/rgb_front_clips")  # fmt: skip
    assert code == 2 and err == (
        "text2sign: error: data import: how2sign.csv exists; pass --force to replace it\n"
    )
    code, _, _ = run(capsys, "data", "import", "how2sign", "--csv", "h2s/how2sign_realigned_train.csv",
                     "--clips", "h2s/rgb_front_clips", "--force")  # fmt: skip
    assert code == 0


def test_synth_phoenix_import_and_check(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "data", "synth", "--out", "P", "--num", "8", "--frames", "4",
                     "--size", "16", "--format", "phoenix", "--signers", "6")  # fmt: skip
    assert code == 0
    code, text, _ = run(capsys, "data", "import", "phoenix", "--root", "P", "--split", "train")
    assert code == 0 and text.startswith("wrote phoenix-train.csv: 8 rows")
    code, report, _ = run(capsys, "data", "check", "phoenix-train.csv")
    assert code == 0 and "samples: 8 (frames: 8; 0 cut)" in report and "Signer00: 2" in report
    code, _, err = run(capsys, "data", "import", "phoenix", "--root", "P", "--split", "dev")
    assert code == 2 and "no corpus for split 'dev'" in err and err.count("\n") == 1


def test_check_names_bad_entries_and_strict_is_exit_2(tmp_path, capsys):
    run(capsys, "data", "synth", "--out", str(tmp_path), "--num", "3", "--format", "mp4",
        "--frames", "2", "--size", "16")  # fmt: skip
    (tmp_path / "s9_0.mp4").write_bytes(b"")
    (tmp_path / "s9_0.txt").write_text("hello")
    code, report, _ = run(capsys, "data", "check", str(tmp_path))
    assert code == 0 and "bad entries: 1\n  s9_0.mp4: empty file (0 bytes)" in report
    code, out, err = run(capsys, "data", "check", str(tmp_path), "--strict")
    assert code == 2 and out == "" and err.count("\n") == 1 and "s9_0.mp4 (empty file" in err


def test_import_usage_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "text2sign", "data", "import", "how2sign",
                           "--csv", str(tmp_path / "h.csv")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "one of the arguments --clips --raw is required" in proc.stderr


@pytest.mark.parametrize("out", ["how2sign", "how2sign.txt"])
def test_import_out_without_a_manifest_suffix_is_refused_before_writing(tmp_path, out):
    """Without .csv/.jsonl the manifest was written, then refused by data check and training."""
    from text2sign.data.shaped import write_how2sign

    csv_path, clips = write_how2sign(tmp_path / "h2s", 4, frames=4, size=16)
    proc = subprocess.run([sys.executable, "-m", "text2sign", "data", "import", "how2sign",
                           "--csv", str(csv_path), "--clips", str(clips), "--out", out],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "a manifest's name ends in .csv or .jsonl" in proc.stderr
    assert not (tmp_path / out).exists()
