"""Execute the tutorial notebooks in full mode, in place, and record how each was made.

    python scripts/run_notebooks.py                      # the notebooks whose code or inputs changed
    python scripts/run_notebooks.py notebooks/07_architectures.ipynb 12   # these (path or prefix), always
    python scripts/run_notebooks.py --force              # every notebook
    python scripts/run_notebooks.py --list               # which are stale, and why (and where piikit/ changed since)
    python scripts/run_notebooks.py --shrink-only 03     # re-fit the committed images to the size budget
    python scripts/run_notebooks.py --thumbnails-only --thumbnail 11=panel.png 11   # a screenshot as 11's thumbnail
    make notebooks                                       # the first line, with the project's venv

Each notebook is executed top to bottom by nbclient with a fresh ``python3`` kernel (full mode:
``PIIKIT_SMOKE`` is removed from the kernel's environment; ``--smoke`` is for checking this
script and needs ``--out``), in a temporary working folder (a notebook must not depend on the
repository's files), with this checkout first on ``PYTHONPATH``. The executed notebook replaces
the file, with ``metadata.piikit.provenance``:

- ``code_sha256``: the hash of the code cells' sources (outputs, ids, execution counts and
  markdown excluded: editing prose does not make outputs stale); ``inputs_sha256`` the hash of
  the files the notebook declares in ``metadata.piikit.inputs`` (paths relative to the
  repository, e.g. package data it plots);
- ``piikit_commit`` and ``dirty`` (uncommitted changes under ``piikit/`` when it ran), ``date``,
  ``mode`` (full / smoke), ``seconds`` (wall time);
- ``machine``: CPU model, its torch capability, cores, torch threads, ``OMP_NUM_THREADS``, the
  GPU if any, torch's version, and the load average before and after (other processes on the
  same cores make ``seconds`` longer).

``tests/test_provenance.py`` fails when a committed notebook's code no longer matches its
``code_sha256``, when it was made in smoke mode, or when it has no provenance or outputs.

Images are fitted to a budget (``--max-notebook-mb``, default 1.5 MB of outputs per notebook):
figures wider than ``--max-width`` pixels are downscaled, a PNG becomes a JPEG (quality 88)
where that is much smaller (photos, inversions; line plots and tables stay PNG), and if the
notebook is still over budget its largest images are scaled down step by step. Images inside
saved widget state (ipywidgets ``Image``) are treated the same way.

Then the README's thumbnail (``docs/notebooks/NN_name.png``, ``--thumb-width`` px) is made from
the first image of the cell tagged ``thumbnail`` (else the notebook's first image), unless
``docs/notebooks/thumbnails.json`` says the thumbnail is a screenshot (kept; replace it with
``--thumbnail NN=PATH``), and ``thumbnails.json`` gets the notebook's minutes and date.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
THUMBNAILS = ROOT / "docs" / "notebooks"
THUMBNAIL_TAG = "thumbnail"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
JPEG_QUALITY = 88
# A PNG becomes a JPEG only when that saves this much: line plots and text stay sharp PNGs.
JPEG_GAIN = 0.6


# -- provenance -------------------------------------------------------------------------------

def _source(cell: dict) -> str:
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    return source.replace("\r\n", "\n")


def code_hash(nb: dict) -> str:
    """sha256 of the code cells' sources, in order: what the outputs were made from."""
    sources = [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def declared_inputs(nb: dict) -> list[str]:
    return list(nb.get("metadata", {}).get("piikit", {}).get("inputs", []))


def inputs_hash(nb: dict, root: Path = ROOT) -> str | None:
    """sha256 over the declared input files (path and bytes); None when none are declared.
    A declared file that is missing hashes as missing, so the notebook reads as stale."""
    paths = declared_inputs(nb)
    if not paths:
        return None
    digest = hashlib.sha256()
    for name in sorted(paths):
        path = root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def provenance(nb: dict) -> dict | None:
    return nb.get("metadata", {}).get("piikit", {}).get("provenance")


def stale_reason(nb: dict) -> str | None:
    """Why the notebook's outputs are not those of its code and inputs now (None: up to date)."""
    record = provenance(nb)
    if not record:
        return "no provenance"
    if record.get("mode") != "full":
        return f"made in {record.get('mode')} mode"
    if record.get("code_sha256") != code_hash(nb):
        return "code changed"
    if record.get("inputs_sha256") != inputs_hash(nb):
        return "inputs changed"
    return None


def library_changes(nb: dict) -> list[str] | None:
    """The files of the package's code (``piikit/`` but its data, which notebooks declare as
    inputs and staleness already covers) that differ now from the commit the outputs were made
    at (None: no commit recorded, or git cannot tell). Informational only: a notebook's outputs
    are not stale when, say, a preset changes, but its images may no longer be the ones the
    preset makes today, which ``--list`` says so that the notebook can be re-run by name."""
    commit = (provenance(nb) or {}).get("piikit_commit")
    if not commit or not _git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"):
        return None
    changed = _git("diff", "--name-only", commit, "--", "piikit", ":(exclude)piikit/data")
    return changed.splitlines() if changed else []


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


# -- images -----------------------------------------------------------------------------------

def _encode(image: Any, kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "jpeg":
        if image.mode in ("RGBA", "LA", "P"):
            from PIL import Image

            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, "white")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        image.convert("RGB").save(buffer, format="jpeg", quality=JPEG_QUALITY, optimize=True, progressive=True)
    else:
        image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def fit_image(data: bytes, kind: str, max_width: int, scale: float = 1.0) -> tuple[bytes, str]:
    """The image re-encoded for reading on a page: at most ``max_width`` px wide (times
    ``scale``), and a JPEG where that is much smaller than the PNG. Returns (bytes, kind)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    width = min(image.width, max_width) * scale
    resized = width < image.width
    if resized:
        size = (max(1, round(width)), max(1, round(image.height * width / image.width)))
        image = image.resize(size, Image.LANCZOS)
    elif kind == "jpeg":
        return data, kind  # already a JPEG at its size: re-encoding only loses quality
    png, jpeg = _encode(image, "png"), _encode(image, "jpeg")
    if len(jpeg) <= JPEG_GAIN * len(png):
        return jpeg, "jpeg"
    if kind == "png" and not resized and len(data) <= len(png):
        return data, "png"
    return png, "png"


class _Image:
    """One image in a notebook: an output's image/png|jpeg, or a widget Image's value buffer."""

    def __init__(self, get: Any, put: Any, original: bytes, kind: str) -> None:
        self.get, self.put, self.original, self.kind = get, put, original, kind

    def size(self) -> int:
        return len(self.get())


def _images(nb: dict) -> list[_Image]:
    found = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for mime in ("image/png", "image/jpeg"):
                if mime in data:
                    found.append(_output_image(output, mime))
                    break
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model in state.values():
        if model.get("model_name") != "ImageModel" or model.get("state", {}).get("format") not in ("png", "jpeg", "jpg"):
            continue
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                found.append(_widget_image(model, buffer))
    return found


def _output_image(output: dict, mime: str) -> _Image:
    data = output["data"]
    state = {"mime": mime}

    def get() -> bytes:
        return base64.b64decode(data[state["mime"]])

    def put(raw: bytes, kind: str) -> None:
        new = f"image/{kind}"
        del data[state["mime"]]
        data[new] = base64.b64encode(raw).decode()
        meta = output.get("metadata", {})
        if state["mime"] in meta and new != state["mime"]:
            meta[new] = meta.pop(state["mime"])
        for key in ("width", "height"):  # a stated display size would stretch a downscaled figure
            meta.get(new, {}).pop(key, None)
        state["mime"] = new

    return _Image(get, put, get(), mime.split("/")[1])


def _widget_image(model: dict, buffer: dict) -> _Image:
    def get() -> bytes:
        return base64.b64decode(buffer["data"])

    def put(raw: bytes, kind: str) -> None:
        buffer["data"] = base64.b64encode(raw).decode()
        model["state"]["format"] = kind

    kind = model["state"]["format"].replace("jpg", "jpeg")
    return _Image(get, put, get(), kind)


def outputs_size(nb: dict) -> int:
    """Bytes of the notebook's outputs and saved widget state, as stored."""
    cells = sum(len(json.dumps(c.get("outputs", []))) for c in nb["cells"] if c["cell_type"] == "code")
    return cells + len(json.dumps(nb.get("metadata", {}).get("widgets", {})))


def shrink(nb: dict, max_width: int, budget: int) -> tuple[int, int]:
    """Fit the notebook's images in place; returns (bytes before, bytes after)."""
    before = outputs_size(nb)
    images = _images(nb)
    for image in images:
        raw, kind = fit_image(image.original, image.kind, max_width)
        image.put(raw, kind)
    scale = 1.0
    while outputs_size(nb) > budget and scale > 0.3 and images:
        scale *= 0.85
        # The largest images first: they carry the excess, small ones stay sharp.
        for image in sorted(images, key=_Image.size, reverse=True)[: max(1, len(images) // 2)]:
            raw, kind = fit_image(image.original, image.kind, max_width, scale)
            image.put(raw, kind)
    return before, outputs_size(nb)


# -- thumbnails -------------------------------------------------------------------------------

def first_image(nb: dict) -> bytes | None:
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if THUMBNAIL_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + code:
        for output in cell.get("outputs", []):
            for mime in ("image/png", "image/jpeg"):
                if mime in output.get("data", {}):
                    return base64.b64decode(output["data"][mime])
    return None


def write_thumbnail(image: bytes, path: Path, width: int) -> None:
    from PIL import Image

    picture = Image.open(io.BytesIO(image)).convert("RGB")
    if picture.width > width:
        picture = picture.resize((width, round(picture.height * width / picture.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="png", optimize=True)


def update_thumbnail(nb: dict, stem: str, screenshot: Path | None, width: int, folder: Path = THUMBNAILS) -> str:
    record_path = folder / "thumbnails.json"
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    old = records.get(stem, {})
    if screenshot is not None:
        write_thumbnail(screenshot.read_bytes(), folder / f"{stem}.png", width)
        source = f"screenshot {screenshot.name}"
    elif str(old.get("source", "")).startswith("screenshot"):
        source = old["source"]  # a browser screenshot says more than the notebook's first figure
    else:
        image = first_image(nb)
        if image is None:
            return "no image for a thumbnail"
        write_thumbnail(image, folder / f"{stem}.png", width)
        source = "first figure of the cell tagged thumbnail (else of the notebook)"
    record = provenance(nb) or {}
    seconds = record.get("seconds")
    records[stem] = {
        "mode": record.get("mode"),
        "minutes": round(seconds / 60, 1) if seconds is not None else None,
        "seconds": seconds,
        "date": record.get("date"),
        "source": source,
        "provenance": f"notebooks/{stem}.ipynb metadata.piikit.provenance",
    }
    record_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    return f"thumbnail {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}/{stem}.png ({source})"


# -- execution --------------------------------------------------------------------------------

def strip(nb: dict) -> dict:
    """A copy without outputs, execution counts or saved widget state."""
    clean = copy.deepcopy(nb)
    for cell in clean["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    clean.get("metadata", {}).pop("widgets", None)
    return clean


def execute(path: Path, smoke: bool, timeout: int) -> Any:
    """The notebook at ``path`` executed from a stripped copy, with its provenance."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.from_dict(strip(nbformat.read(path, as_version=4)))
    env = os.environ
    saved = {k: env.get(k) for k in ("PIIKIT_SMOKE", "MPLBACKEND", "PYTHONPATH", "OMP_WAIT_POLICY")}
    try:
        env.pop("MPLBACKEND", None)  # the kernel shows figures as JupyterLab's would
        if smoke:
            env["PIIKIT_SMOKE"] = "1"
        else:
            env.pop("PIIKIT_SMOKE", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        load_before = _load()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="piikit-notebook-") as work:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                           resources={"metadata": {"path": work}}).execute()
        seconds = time.perf_counter() - started
        load_after = _load()
        info = machine()
    finally:
        for key, value in saved.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "piikit")
    info.update(load_average_before=load_before, load_average_after=load_after)
    meta = nb.metadata.setdefault("piikit", {})
    meta["provenance"] = {
        "code_sha256": code_hash(nb),
        "inputs_sha256": inputs_hash(nb),
        "piikit_commit": _git("rev-parse", "HEAD") or None,
        "dirty": bool(status),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "smoke" if smoke else "full",
        "seconds": round(seconds, 1),
        "machine": info,
    }
    return nb


# -- the command ------------------------------------------------------------------------------

def select(names: list[str]) -> list[Path]:
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        path = Path(name)
        matches = [path.resolve()] if path.suffix == ".ipynb" and path.exists() else [
            p for p in every if p.stem.startswith(path.stem)]
        if not matches:
            raise SystemExit(f"no notebook matches {name!r}; the notebooks: {', '.join(p.stem for p in every)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="paths or name prefixes (given: run them even if up to date)")
    parser.add_argument("--force", action="store_true", help="run every selected notebook, up to date or not")
    parser.add_argument("--list", action="store_true", help="say which notebooks are stale and why; run nothing")
    parser.add_argument("--shrink-only", action="store_true", help="fit the committed images to the budget; run nothing")
    parser.add_argument("--thumbnails-only", action="store_true",
                        help="remake thumbnails and thumbnails.json from the committed outputs; run nothing")
    parser.add_argument("--smoke", action="store_true", help="smoke mode (PIIKIT_SMOKE=1), to check this script; needs --out")
    parser.add_argument("--out", type=Path, help="write the executed notebooks (and thumbnails) here, not in place")
    parser.add_argument("--thumbnail", action="append", default=[], metavar="NN=PATH",
                        help="use this picture (a browser screenshot) as notebook NN's thumbnail")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--max-width", type=int, default=1400, help="widest image kept, in pixels")
    parser.add_argument("--max-notebook-mb", type=float, default=1.5, help="budget of one notebook's outputs")
    parser.add_argument("--thumb-width", type=int, default=360, help="thumbnail width in pixels")
    args = parser.parse_args(argv)
    if args.smoke and not args.out:
        parser.error("--smoke writes smoke-mode outputs, which must not replace the committed ones: give --out")

    import nbformat

    # The kernel machinery leaves SIGTERM without effect on this process (seen: a runner told to stop went on
    # to its next notebook); make it stop the run, shutting the kernel down on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    paths = select(args.notebooks)
    screenshots = {k: Path(v) for k, v in (item.split("=", 1) for item in args.thumbnail)}
    budget = int(args.max_notebook_mb * 1_000_000)
    failed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        reason = stale_reason(nb)
        if args.list:
            changed = None if reason else library_changes(nb)
            drift = f" (piikit/ changed since: {len(changed)} files: {', '.join(changed[:3])}" \
                    f"{', ...' if len(changed) > 3 else ''})" if changed else ""
            print(f"{path.stem}: {reason or 'up to date'}{drift}")
            continue
        if args.shrink_only:
            before, after = shrink(nb, args.max_width, budget)
            nbformat.write(nb, args.out / path.name if args.out else path)
            print(f"{path.stem}: outputs {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")
            continue
        screenshot = next((p for k, p in screenshots.items() if path.stem.startswith(k)), None)
        thumbs = (args.out / "thumbnails") if args.out else THUMBNAILS
        if args.thumbnails_only:
            print(f"{path.stem}: {update_thumbnail(nb, path.stem, screenshot, args.thumb_width, thumbs)}")
            continue
        if not (args.force or args.notebooks or reason):
            continue
        print(f"{path.stem}: running ({reason or 'asked for'}) ...", flush=True)
        try:
            executed = execute(path, args.smoke, args.timeout)
        except Exception as error:  # noqa: BLE001 - one notebook's failure must not stop the others
            first = str(error).strip().splitlines()
            print(f"{path.stem}: FAILED: {type(error).__name__}: {first[-1] if first else ''}", file=sys.stderr)
            failed.append(path.stem)
            continue
        before, after = shrink(executed, args.max_width, budget)
        target = (args.out / path.name) if args.out else path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(executed, target)
        note = update_thumbnail(executed, path.stem, screenshot, args.thumb_width, thumbs)
        seconds = provenance(executed)["seconds"]
        print(f"{path.stem}: {seconds / 60:.1f} min, outputs {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB; {note}",
              flush=True)
    if not (args.list or args.thumbnails_only):
        sizes = [outputs_size(nbformat.read(p, as_version=4)) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
        print(f"series outputs: {sum(sizes) / 1e6:.2f} MB in {len(sizes)} notebooks")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
