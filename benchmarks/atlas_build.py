"""How long the atlas takes to build for a 48-class and a 1,000-class sweep folder.

A real ``preview`` sweep of Lite0 makes ``--template`` classes; the folder of N classes is then
*fabricated* from them: each class gets a copy of a template PNG and its ``result.json`` with the
class index and label changed (the layout, file sizes and JSON are a sweep's; only the pixels
repeat). Timed per N: the build with the analysis (Lite0's top-5 and Grad-CAM, Lite1/Lite2
scores), a rebuild (the analysis cached), and a build without the analysis (``--no-analysis``).

    nice -n 10 python benchmarks/atlas_build.py --sizes 48 1000 --analyze-up-to 48
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

import piikit
from piikit.engine.result_files import class_stem
from piikit.labels import imagenet_classes, label

OUT = Path(__file__).resolve().parent / "results" / "atlas_build.json"


def fabricate(template: Path, folder: Path, n: int) -> None:
    """``n`` classes (0..n-1) in ``folder/efficientnet_lite0`` from the template sweep's files."""
    sources = sorted(template.glob("*.result.json"))
    names = imagenet_classes()
    model_dir = folder / "efficientnet_lite0"
    model_dir.mkdir(parents=True)
    for c in range(n):
        meta_path = sources[c % len(sources)]
        meta = json.loads(meta_path.read_text())
        stem = class_stem(c, names)
        shutil.copyfile(template / meta["files"][0], model_dir / f"{stem}.png")
        meta["targets"] = [{"index": c, "label": label(c)}]
        meta["files"] = [f"{stem}.png"]
        (model_dir / f"{stem}.result.json").write_text(json.dumps(meta, indent=2))


def timed(**kwargs: object) -> float:
    start = time.perf_counter()
    piikit.atlas(progress=False, **kwargs)  # type: ignore[arg-type]
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 1000])
    parser.add_argument("--analyze-up-to", type=int, default=1000, help="time the analysis only up to this many classes")
    parser.add_argument("--template", type=int, default=4, help="classes in the real preview sweep")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atlas-build-"))
    try:
        piikit.sweep("efficientnet_lite0", f"0-{args.template - 1}", "preview", work / "template", progress=False)
        rows = []
        for n in args.sizes:
            runs = work / f"runs{n}"
            fabricate(work / "template" / "efficientnet_lite0", runs, n)
            row: dict[str, object] = {"classes": n, "files_only_s": timed(runs=runs, out=runs / "plain", analyze=False)}
            if n <= args.analyze_up_to:
                row["with_analysis_s"] = timed(runs=runs)
                row["rebuild_cached_s"] = timed(runs=runs)
            row["site_mb"] = round(sum(p.stat().st_size for p in (runs / "atlas").rglob("*") if p.is_file()) / 1e6, 2) \
                if (runs / "atlas").exists() else None
            rows.append(row)
            print(row, flush=True)
        record = {"rows": rows, "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                  "cpu": platform.processor() or platform.machine(),
                  "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "note": "folders fabricated from a real 4-class preview sweep (PNG + result.json copied per class)"}
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
