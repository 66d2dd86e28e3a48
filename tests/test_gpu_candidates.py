"""research/gpu_candidates.sh, dry-run on the CPU: candidates train, the validation ranking picks one, and the
packed set comes back whole and loads."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # trains two tiny candidates end to end through the shell driver


def test_gpu_candidates_dry_run_packs_the_validation_winner(tmp_path):
    out, work, data = tmp_path / "out", tmp_path / "work", tmp_path / "data"
    out.mkdir()
    import timm
    from safetensors.torch import save_file

    init = tmp_path / "init.safetensors"  # the script's starting point (busi 1.x's DLM-1) without the git history
    save_file(
        {k: v.contiguous() for k, v in timm.create_model("convnext_atto", num_classes=2).state_dict().items()}, init
    )
    env = dict(
        os.environ, OUT=str(out), WORK=str(work), DATA=str(data), DEVICE="cpu", SCALE="0.03", BUDGET="1",
        HARD="300", COMPARE="", INIT_FILE=str(init), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(ROOT),
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", "research/gpu_candidates.sh", "a:64x48:0", "b:48x32:1"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ranking = (work / "selection.txt").read_text().splitlines()
    winner = ranking[-1].split()[1]
    assert winner in {"a", "b"} and ranking[0].startswith(winner)  # the first row is the highest mean
    parts = sorted(out.glob("winner.tar.part-*"))
    assert parts and all(p.stat().st_size <= 16 * 2**20 for p in parts)
    blob = tmp_path / "winner.tar"
    blob.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(blob) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    from softmass_core.weights.weight_set import WeightSet

    ws = WeightSet.load(tmp_path / "back" / "set")
    assert ws.verified and ws.input_spec.width == {"a": 64, "b": 48}[winner]
    with tarfile.open(out / "logs.tgz") as tar:
        names = tar.getnames()
    assert any(n.endswith("phantom_sha256.txt") for n in names)
    assert not any(n.endswith(".safetensors") for n in names)
