"""Two `piikit sweep` processes started together on one --out: is every class computed
exactly once? Prints one row per trial (classes computed, duplicates, manifest lines, the
split between the two processes) and exits 1 if any trial lost or repeated a class.

    python benchmarks/concurrent_sweeps.py --trials 3 --classes 0-19

A random tiny timm ResNet at 32 px (seconds per class on a CPU), so the trial is about the
locking, not the images. The numbers: docs/benchmarks.md ("Two sweeps on one folder").
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def trial(classes: str, steps: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        command = [sys.executable, "-m", "piikit", "sweep", "--models", "test_resnet", "--no-pretrained",
                   "--device", "cpu", "--preset", "preview", "--image-size", "32", "--stages", "1",
                   "--steps-per-stage", str(steps), "--classes", classes, "--out", str(out), "--quiet"]
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
        started = time.perf_counter()
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=900) for p in procs]
        lines = (out / "manifest.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        counts = collections.Counter(r["class"] for r in records)
        by_pid = collections.Counter(r.get("pid") for r in records)
        folder = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
        return {
            "exit codes": [p.returncode for p in procs],
            "classes computed": len(counts),
            "duplicates": sum(n - 1 for n in counts.values()),
            "manifest lines": len(lines),
            "result files": len(list(folder.glob("*.result.json"))),
            "split": sorted(by_pid.values(), reverse=True),
            "leftovers": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith(".tmp")
                                or ".claims" in p.parts),
            "seconds": round(time.perf_counter() - started, 1),
            "stderr": [e[-300:] for _, e in outputs if e.strip()],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--classes", default="0-19")
    parser.add_argument("--steps", type=int, default=10, help="steps per class (longer: more overlap)")
    args = parser.parse_args()
    first, last = map(int, args.classes.split("-"))
    wanted = last - first + 1
    ok = True
    for i in range(args.trials):
        row = trial(args.classes, args.steps)
        print(json.dumps({"trial": i + 1, "classes wanted": wanted, **row}), flush=True)
        ok &= (row["exit codes"] == [0, 0] and row["classes computed"] == wanted and row["duplicates"] == 0
               and row["manifest lines"] == wanted and not row["leftovers"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
