"""Make the README's notebook thumbnails from the documentation site's executed notebooks.

    make docs                                              # executes every notebook (full mode), once
    python scripts/make_notebook_thumbnails.py             # one thumbnail per notebook, from that build
    python scripts/make_notebook_thumbnails.py 03 05       # only these (by name prefix)
    python scripts/make_notebook_thumbnails.py --image 11=explorer-panel.png   # a screenshot instead
    PIIKIT_SMOKE=1 make docs && python scripts/make_notebook_thumbnails.py --smoke   # check the script

Nothing is executed here: ``make docs`` runs each notebook through myst-nb's jupyter-cache
(``docs/_build/.jupyter_cache/full``, or ``docs/_build/smoke/.jupyter_cache/smoke``), and
this script takes the executed copy whose code matches the notebook in ``notebooks/`` now
(a notebook edited since the build is reported, not used). The figure kept is the first PNG
output of the cell tagged ``thumbnail`` (else the notebook's first PNG), or the image given
with ``--image NN=PATH`` (the explorer's panel as the browser shows it: ``tests/test_browser.py``
leaves ``explorer-panel.png`` in its temporary folder), shrunk to ``--width`` pixels and written
to ``docs/notebooks/NN_name.png`` (``--smoke``: to ``docs/_build/smoke/thumbnails/``, so a smoke
check never replaces the committed pictures). ``thumbnails.json`` beside them records, per
notebook, the mode, the minutes its execution took, when, and on which machine (CPU, its
capability, cores, threads: from ``executions.json``, which the docs build writes into the
cache as it executes each notebook).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TAG = "thumbnail"
BUILDS = {"full": ROOT / "docs" / "_build", "smoke": ROOT / "docs" / "_build" / "smoke"}
OUTS = {"full": ROOT / "docs" / "notebooks", "smoke": ROOT / "docs" / "_build" / "smoke" / "thumbnails"}


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


def executed(cache_dir: Path, path: Path) -> tuple[dict, dict]:
    """The executed notebook in the cache whose code matches ``path`` now, and its cache
    record's data (``execution_seconds``, ``created``). KeyError when there is none."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_dir))
    nb = nbformat.read(path, as_version=4)
    pk, merged = cache.merge_match_into_notebook(nb)
    record = cache.get_cache_record(pk)
    return merged, {"seconds": (record.data or {}).get("execution_seconds"), "created": record.created}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--smoke", action="store_true", help="from the smoke-mode build (PIIKIT_SMOKE=1 make docs)")
    parser.add_argument("--build", type=Path, help="the docs build folder (default: docs/_build, or docs/_build/smoke)")
    parser.add_argument("--out", type=Path, help="where the thumbnails and thumbnails.json go")
    parser.add_argument("--image", action="append", default=[], metavar="NN=PATH",
                        help="take notebook NN's thumbnail from this picture (a browser screenshot)")
    parser.add_argument("--width", type=int, default=360, help="thumbnail width in pixels")
    args = parser.parse_args(argv)

    mode = "smoke" if args.smoke else "full"
    build = args.build or BUILDS[mode]
    cache_dir = build / ".jupyter_cache" / mode
    out = args.out or OUTS[mode]
    images = dict(item.split("=", 1) for item in args.image)
    if not cache_dir.is_dir():
        print(f"no {mode}-mode build in {build}: run {'PIIKIT_SMOKE=1 ' if args.smoke else ''}make docs first",
              file=sys.stderr)
        return 2
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for o in args.only for p in paths if p.stem.startswith(o)]
    if not paths:
        print(f"no notebook matches {args.only}", file=sys.stderr)
        return 2
    executions_path = cache_dir / "executions.json"
    executions = json.loads(executions_path.read_text()) if executions_path.exists() else {}
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "thumbnails.json"
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    failed = []
    for path in paths:
        try:
            nb, cached = executed(cache_dir, path)
        except KeyError:
            print(f"{path.stem}: not in {cache_dir} as it is now (edited since the build?): run make docs")
            failed.append(path.stem)
            continue
        given = next((Path(p) for k, p in images.items() if path.stem.startswith(k)), None)
        png = given.read_bytes() if given else _first_png(nb)
        if png is None:
            print(f"{path.stem}: no figure to use")
            failed.append(path.stem)
            continue
        (out / f"{path.stem}.png").write_bytes(_shrink(png, args.width))
        run = executions.get(path.stem, {})
        seconds = cached["seconds"] if cached["seconds"] is not None else run.get("seconds")
        records[path.stem] = {
            "mode": mode,
            "source": f"screenshot {given.name}" if given else "first figure of the executed notebook",
            "minutes": round(seconds / 60, 1) if seconds is not None else None,
            "seconds": round(seconds, 1) if seconds is not None else None,
            "date": run.get("date") or cached["created"].strftime("%Y-%m-%d %H:%M UTC"),
            # The machine that executed it, recorded by the docs build (None: executed by a build
            # older than that record).
            "machine": run.get("machine"),
            # Other processes on the same cores make "seconds" longer; this says how busy it was.
            "load_average_1min": run.get("load_average_1min"),
        }
        record_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
        minutes = f"{seconds / 60:.1f} min" if seconds is not None else "time unknown"
        print(f"{path.stem}: executed in {minutes} -> {out / (path.stem + '.png')}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
