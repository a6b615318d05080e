"""benchmarks/gpu_check.sh on a machine (or with a view) without CUDA: every GPU part is
skipped with a message naming them, and the check exits 0."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_skips_cleanly_without_cuda():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "skipped" in done.stdout
    for part in ("pytest --device cuda", "micro_batch='auto' at e=32", "paper images/hour", "2-rank sweep"):
        assert part in done.stdout
