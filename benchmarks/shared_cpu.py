"""One, two and three `piikit invert` runs at once on a shared CPU.

Each run is a separate process inverting one class of the offline Lite0 with fixed settings
(the ``preview`` preset as it was first shipped: 3 stages x 10 steps, ensemble 2, lr 0.1, so
the work stays the same when presets change). A run's time is its own optimization time
(``elapsed_s`` in its result.json), not the start-up. With ``c`` cores and ``n`` runs at once,
fair sharing would make each run about ``max(1, n / c')`` times slower than alone, where
``c'`` is how many cores one run keeps busy; the table reports each time against
``n x alone`` (the worst fair case: runs that each use every core), so a ratio above 1 means
the runs hurt each other beyond sharing.

Variants (what a user gets):

``piikit``
    ``piikit invert`` as installed: importing piikit before torch sets ``OMP_WAIT_POLICY=PASSIVE``
    (unless already set), so idle OpenMP threads sleep instead of spinning.
``torch-first``
    torch imported before piikit, as in a notebook that imports torch first: OpenMP's own
    default wait policy (threads spin for a while before sleeping).
``1-thread``
    like ``torch-first`` but ``OMP_NUM_THREADS=1`` per run.

    python benchmarks/shared_cpu.py                 # 1, 2, 3 runs; every variant; 3 repeats
    python benchmarks/shared_cpu.py --runs 1 2 --variants piikit torch-first --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = ["invert", "--model", "efficientnet_lite0", "--class", "volcano", "--preset", "preview", "--stages", "3",
       "--steps-per-stage", "10", "--ensemble", "2", "--lr", "0.1", "--device", "cpu", "--quiet"]

# How each variant starts the command; torch-first imports torch before piikit can set anything.
LAUNCH = {
    "piikit": [sys.executable, "-m", "piikit.interfaces.cli"],
    "torch-first": [sys.executable, "-c", "import sys, torch; from piikit.interfaces.cli import main; sys.exit(main())"],
    "1-thread": [sys.executable, "-c", "import sys, torch; from piikit.interfaces.cli import main; sys.exit(main())"],
}


def _env(variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = "1" if variant == "1-thread" else str(os.cpu_count() or 1)
    return env


def run_at_once(variant: str, n: int) -> list[float]:
    """Start ``n`` runs together; return each run's optimization time in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"run{i}" for i in range(n)]
        procs = [subprocess.Popen([*LAUNCH[variant], *RUN, "--out", str(out)], env=_env(variant),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for out in outs]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"a run failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
        return [json.loads((out / "result.json").read_text())["elapsed_s"] for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 3], help="how many runs at once")
    parser.add_argument("--variants", nargs="+", default=list(LAUNCH), choices=list(LAUNCH))
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each cell (the median is shown)")
    args = parser.parse_args()

    print(f"{os.cpu_count()} cores; each cell: median per-run optimization time over {args.repeat} repeats")
    print(f"{'variant':<12} {'runs':>4} {'s/run':>7} {'min':>6} {'max':>6} {'vs n x alone':>13}")
    for variant in args.variants:
        alone = None
        for n in args.runs:
            # Printed cell by cell: many runs at once can take minutes when they hurt each other.
            times = [t for _ in range(args.repeat) for t in run_at_once(variant, n)]
            median = statistics.median(times)
            alone = median if n == 1 else alone
            ratio = f"{median / (n * alone):.2f}" if alone else "-"
            print(f"{variant:<12} {n:>4} {median:>7.2f} {min(times):>6.2f} {max(times):>6.2f} {ratio:>13}", flush=True)


if __name__ == "__main__":
    main()
