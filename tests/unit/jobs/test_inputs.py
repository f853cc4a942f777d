"""The pre-submit data check (``jobs/inputs.py``) on every kind of dataset: cheap, torch-free,
one line naming the dataset when nothing is usable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.inputs import SKIP_HINT, check_data
from tests.conftest import REPO
from text2sign.config import load_config
from text2sign.errors import UsageError

SCRIPT = """
import sys
from pathlib import Path
from jobs.inputs import check_data
from text2sign.config import load_config
for root in sys.argv[1:]:
    check_data(load_config(profile="tiny", overrides=[f"data.root={root}"]), Path.cwd())
assert "torch" not in sys.modules, "the submit path imported torch"
print("ok")
"""


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> list[Path]:
    from text2sign.data.importers import import_phoenix
    from text2sign.data.shaped import write_phoenix
    from text2sign.data.synth import generate

    base = tmp_path_factory.mktemp("kinds")
    out = []
    for fmt in ("gif", "mp4", "webm", "frames"):
        generate(base / fmt, 2, frames=2, size=16, fmt=fmt)
        out += [base / fmt, base / fmt / "manifest.csv"]
    write_phoenix(base / "P", 2, frames=2, size=16)
    import_phoenix(base / "P", "train", base / "p.csv")
    return [*out, base / "p.csv"]


def test_every_kind_passes_without_importing_torch(roots):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, roots)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_unusable_manifest_is_one_line_naming_it(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,caption,signer\nzero.mp4,hello,s1\n")
    cfg = load_config(profile="tiny", overrides=[f"data.root={manifest}"])
    with pytest.raises(UsageError) as err:
        check_data(cfg, tmp_path)
    assert str(err.value) == (
        f"data.root: no usable row in manifest {manifest} (1 bad: m.csv line 2 "
        f"(zero.mp4: empty file (0 bytes))) {SKIP_HINT}"
    )


def test_check_stops_at_the_first_sample_that_decodes(tmp_path, monkeypatch):
    from text2sign.data import video
    from text2sign.data.synth import generate

    generate(tmp_path, 5, frames=2, size=16, fmt="mp4")
    probed = []
    real = video.probe
    monkeypatch.setattr(video, "probe", lambda s: probed.append(s.name) or real(s))
    check_data(load_config(profile="tiny", overrides=["data.root=manifest.csv"]), tmp_path)
    assert probed == ["s0_00000"]  # relative data.root: the job's workdir
