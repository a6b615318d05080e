"""Chaos: 60 classes swept by two processes on one folder, killed with SIGKILL 20 times (while
starting, computing and saving) and restarted until done. Every class must then be there
once, complete and readable, logged once, and `piikit score` must read the folder. It runs
``benchmarks/chaos_sweep.py`` on a random tiny timm ResNet at 32 px (the longer record, on
Lite0: docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_sweep_killed_twenty_times_ends_with_every_class_once(tmp_path):
    record_path = tmp_path / "chaos.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "chaos_sweep.py"), "--model", "test_resnet",
                           "--image-size", "32", "--classes", "60", "--kills", "20", "--no-baseline",
                           "--json", str(record_path), "--timeout", "900"],
                          cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=1200)
    record = json.loads(record_path.read_text())
    chaos, check = record["chaos"], record["check"]
    assert chaos["kills"] == 20 and chaos["exit_codes"].get("-9") == 20, chaos  # each kill a real SIGKILL
    assert chaos["kills_by_kind"].get("save", 0) >= 1, chaos  # at least one landed mid-save
    assert check["classes_present"] == 60 and check["missing"] == [] and check["not_one_png_and_json"] == []
    assert check["unreadable"] == [], check["unreadable"]
    assert check["manifest_duplicates"] == [] and check["manifest_missing"] == [] and check["manifest_lines"] == 60
    assert check["leftovers"] == [] and check["contact_sheet"]
    assert check["score_exit"] == 0 and check["score_rows"] == 60, check["score_error"]
    assert done.returncode == 0 and record["ok"], done.stderr[-2000:]
