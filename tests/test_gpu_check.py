"""benchmarks/gpu_check.sh without CUDA prints its plan and measures nothing (exit 0); with
``--tiny`` it runs every part at toy sizes on the CPU (the dry run a GPU session's check
rests on) and writes its table."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("pytest --device cuda", "floor: bare Lite0 forward + input-gradient", "paper preset", "quick: s/class",
         "levers on quick", "sweep --classes 0-999 --preset paper")


def _check(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_gpu_check_prints_its_plan_and_skips_without_cuda():
    done = _check(timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "nothing measured" in done.stdout
    for part in PARTS:
        assert part in done.stdout, part


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_part_on_the_cpu(tmp_path):
    done = _check("--tiny", "--results", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = (tmp_path / "gpu_check_cpu_tiny.txt").read_text()
    for row in ("floor: Lite0 forward + input-gradient, fp32", "paper preset, K=1", "paper preset, K=2",
                "quick preset, s/class at its best batch", "quick, 2 classes: bf16 + channels-last",
                "1,000 classes at the K-batched rate", "sweep --classes 0-999"):
        assert row in table, row
    assert "FAILED" not in table and "2 classes in" in table
    assert (tmp_path / "gpu_check_sweep_cpu_tiny" / "contact_sheet.png").is_file()
