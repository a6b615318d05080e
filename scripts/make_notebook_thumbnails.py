"""Make the README's notebook thumbnails: execute each notebook and keep one of its figures.

    python scripts/make_notebook_thumbnails.py              # full mode, every notebook
    python scripts/make_notebook_thumbnails.py 03 05        # only these (by name prefix), in this order
    python scripts/make_notebook_thumbnails.py --smoke 02   # smoke mode (to check the script)

Each notebook runs in a real kernel (nbclient) with ``PIIKIT_SMOKE`` unset (full mode: the
``fast`` preset at full size) or ``PIIKIT_SMOKE=1``. The figure kept is the first PNG output of
the cell tagged ``thumbnail`` (else the notebook's first PNG), shrunk to ``--width`` pixels
and written to ``docs/notebooks/NN_name.png``. ``docs/notebooks/thumbnails.json`` records, per
notebook, the mode, the seconds it took, and the machine (CPU, threads, torch device), so the
README can say what made each picture. Nothing executed is written back to ``notebooks/``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
TAG = "thumbnail"


def _first_png(nb: dict) -> bytes | None:
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + code:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                return base64.b64decode(png)
    return None


def _shrink(png: bytes, width: int) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _machine() -> dict[str, object]:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical cores)" if names else cpu
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def run(path: Path, smoke: bool, timeout: int) -> tuple[dict, float]:
    """Execute one notebook in a fresh kernel, from the notebooks folder; returns it and
    the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("PIIKIT_SMOKE")
    os.environ["PIIKIT_SMOKE"] = "1" if smoke else "0"  # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        return nb, time.perf_counter() - start
    finally:
        if env_before is None:
            os.environ.pop("PIIKIT_SMOKE", None)
        else:
            os.environ["PIIKIT_SMOKE"] = env_before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--smoke", action="store_true", help="run in smoke mode (PIIKIT_SMOKE=1)")
    parser.add_argument("--width", type=int, default=360, help="thumbnail width in pixels")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--executed", type=Path, help="also write each executed notebook (with outputs) here")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:  # in the order given, so the quick ones can go first
        paths = [p for o in args.only for p in paths if p.stem.startswith(o)]
    if not paths:
        print(f"no notebook matches {args.only}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    record_path = OUT / "thumbnails.json"
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    machine = _machine()
    failed = []
    for path in paths:
        print(f"{path.stem}: running ({'smoke' if args.smoke else 'full'} mode)...", flush=True)
        try:
            nb, seconds = run(path, args.smoke, args.timeout)
        except Exception as error:  # keep going: one failing notebook should not cost the others' thumbnails
            print(f"{path.stem}: FAILED: {str(error).strip().splitlines()[-1] if str(error).strip() else error!r}")
            failed.append(path.stem)
            continue
        if args.executed:
            import nbformat

            args.executed.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.executed / path.name)
        png = _first_png(nb)
        if png is None:
            print(f"{path.stem}: no figure to use")
            failed.append(path.stem)
            continue
        (OUT / f"{path.stem}.png").write_bytes(_shrink(png, args.width))
        records[path.stem] = {
            "mode": "smoke" if args.smoke else "full",
            "seconds": round(seconds, 1),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": machine,
            # Other processes on the same cores make "seconds" longer; this says how busy it was.
            "load_average_1min": round(os.getloadavg()[0], 1),
        }
        record_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
        print(f"{path.stem}: {seconds:.0f} s -> {OUT / (path.stem + '.png')}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
