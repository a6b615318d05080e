"""The ``piikit`` command: invert classes, sweep many, score inversions, list classes and models.

    piikit invert --model efficientnet_lite0 --class volcano --class goldfinch --preset fast --out out/
    piikit sweep --models efficientnet_lite0,efficientnet_lite1 --classes 0-999 --out runs/   # resumable; torchrun-ready
    piikit score out/ --evaluator efficientnet_lite2
    piikit classes --search terrier
    piikit models

Bad input exits with status 2 and a one-line reason; Ctrl-C saves what was done and exits 130,
SIGTERM (a batch scheduler, ``timeout``) the same with 143.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from piikit.interfaces.process import set_process_defaults

__all__ = ["main"]


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line: ``--set KEY=VALUE`` first, then each config
    field's own flag (a flag not given keeps the preset's value)."""
    from piikit.engine.config import InversionConfig

    overrides: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key.strip().replace("-", "_")] = _setting_value(value)
    overrides.update({name: getattr(args, name) for name in InversionConfig.field_docs() if hasattr(args, name)})
    return overrides


def _setting_value(text: str) -> Any:
    """A setting's value as typed: JSON (``4``, ``0.1``, ``true``, ``[0.5, 0.9]``), numbers
    separated by commas (``0.5,0.9``), ``none`` for None, else the text itself (``auto``, ``fourier``); the config checks it against the field's type."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return float(text)  # inf, nan: numbers JSON does not spell (the config refuses them in one line)
    except ValueError:
        pass
    if "," in text:  # 0.5,0.99
        try:
            return [json.loads(part) for part in text.split(",")]
        except json.JSONDecodeError:
            pass
    return text


def _read_class_lines(path: str) -> list[str]:
    """``--classes-file``: its non-empty lines (UTF-8, a byte-order mark dropped), or one line saying why not."""
    from pathlib import Path

    file = Path(path)
    if file.is_dir():
        raise ValueError(f"--classes-file {path} is a folder; give a text file with one class per line")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--classes-file {path}: no such file") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"--classes-file {path} is not UTF-8 text (byte {error.start}: {error.reason}); "
                         "give a text file with one class per line") from error
    if "\x00" in text:
        raise ValueError(f"--classes-file {path} is a binary file; give a text file with one class per line")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _cmd_invert(args: argparse.Namespace) -> int:
    from piikit.device import resolve_device
    from piikit.engine.config import make_config
    from piikit.engine.inversion import invert
    from piikit.errors import InversionFailed
    from piikit.interfaces.torchrun import sigterm_as_interrupt
    from piikit.labels import resolve_classes
    from piikit.models import load_model
    from piikit.validation import check_int

    check_int("--batch", args.batch, low=1)
    classes = list(args.classes or [])
    if args.classes_file:
        classes += _read_class_lines(args.classes_file)
    if not classes:
        raise ValueError("give at least one --class (a name or an index)")
    check_int("seed", args.seed, low=0, high=2**64 - 1)
    overrides = _config_overrides(args)
    make_config(args.preset, **overrides)  # bad settings fail before any loading
    resolve_device(args.device)  # a device this machine lacks fails before any loading
    out = _writable_directory(args.out)
    with sigterm_as_interrupt() as caught:  # SIGTERM (a scheduler, `timeout`) saves like Ctrl-C
        try:
            model = load_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                               trust_pickle=args.trust_pickle)
        except KeyboardInterrupt:
            print("piikit: interrupted while loading the model; nothing was run", file=sys.stderr)
            return caught.exit_code
        targets = resolve_classes(classes, model.class_names)  # fail on a bad name before any work
        batches = [targets[i : i + args.batch] for i in range(0, len(targets), args.batch)]
        status = 0
        for j, batch in enumerate(batches):
            try:
                # The preset by name: on CUDA its CPU-sized micro_batch gives way to "auto" (for_device).
                result = invert(model, batch, args.preset, seed=args.seed, device=args.device, progress=not args.quiet,
                                **overrides)
            except InversionFailed as failure:
                result, status = failure.partial, 1
                print(f"piikit: {failure}", file=sys.stderr)
            interrupted = result.stop_reason == "interrupted"
            if args.score and not interrupted:
                # The result knows the inverted model, so it is left out of the default evaluators.
                result.score(device=args.device)
            prefix = f"batch{j:03d}_" if len(batches) > 1 else ""
            paths = result.save(out, snapshots=args.snapshots, prefix=prefix)
            probs = result.final_probs.tolist() if result.final_probs is not None else []
            for path, lab, p in zip(paths, result.labels, probs):
                print(f"{path}  {lab}  p={p:.3f}")
            if result.scores:
                from piikit.analysis.evaluate import summarize

                for name, s in summarize(result.scores).items():
                    print(f"  scored by {name}: top1={s['top1']:.2f} top5={s['top5']:.2f} prob={s['prob']:.3f}")
            if interrupted:
                print(f"piikit: interrupted at step {result.steps_done}/{result.total_steps}; "
                      f"saved the partial result to {out}", file=sys.stderr)
                return caught.exit_code
    return status


def _writable_directory(path: str) -> Any:
    """``--out`` as a directory that takes files, checked before the run; folders the check
    creates are removed again (saving creates them), so a failed run leaves nothing."""
    import tempfile
    from pathlib import Path

    if not str(path).strip():
        raise ValueError("--out is empty; give a directory ('.' for the current one)")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {path} is an existing file; give a directory (it is created if missing)")
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ValueError(f"--out {path} cannot be written to ({reason}); give a writable directory") from e
    finally:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not created after all, or someone else's files arrived
                break
    return out


def _cmd_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    from piikit.analysis.evaluate import default_evaluators, format_scores, score, summarize
    from piikit.engine import result_files
    from piikit.validation import check_int

    check_int("--batch-size", args.batch_size, low=1)
    directory = Path(args.directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no directory {str(directory)!r}")
    metas = sorted(directory.glob(f"*{result_files.RESULT_FILE}"))
    if not metas:
        raise FileNotFoundError(
            f"no result.json in {str(directory)!r}; `piikit invert --out DIR` (InversionResult.save) writes one"
        )
    # Every result.json checked (its images beside it) before any image is read or file written.
    results = [(meta_path, *result_files.read_result(meta_path)) for meta_path in metas]
    all_rows = []
    unsaved: list[str] = []
    for meta_path, meta, paths, targets in results:
        images = result_files.read_images(paths)
        evaluators = args.evaluators or default_evaluators(meta.get("model"))
        rows = score(evaluators, images, targets, device=args.device, batch_size=args.batch_size,
                     resize=args.resize)
        for row in rows:
            row["file"] = paths[row["image"]].name
        all_rows += rows
        if not args.no_save:
            # Replace earlier rows of the same evaluators; keep the others.
            scored_by = {r["evaluator"] for r in rows}
            kept = [r for r in meta.get("scores") or [] if isinstance(r, dict) and r.get("evaluator") not in scored_by]
            meta["scores"] = kept + rows
            try:
                result_files.write_atomic(meta_path, json.dumps(meta, indent=2).encode())
            except OSError as error:
                unsaved.append(f"{meta_path} ({error.strerror or error})")
    if args.json:
        print(json.dumps({"rows": all_rows, "summary": summarize(all_rows)}, indent=2))
    else:
        print(format_scores(all_rows))
    if unsaved:
        print(f"piikit: could not save the scores into {'; '.join(unsaved)}; they are printed above", file=sys.stderr)
        return 1
    return 0


def _cmd_classes(args: argparse.Namespace) -> int:
    from piikit.labels import imagenet_classes, search_classes

    from piikit.validation import check_int

    check_int("--limit", args.limit, low=1)
    rows = search_classes(args.search, limit=args.limit) if args.search else list(enumerate(imagenet_classes()))
    if args.search and not rows:
        raise ValueError(f"no class matches {args.search!r}")
    for i, name in rows:
        print(f"{i:4d}  {name}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from piikit.models import available_models

    found = available_models(args.pattern)
    print("offline, real ImageNet-1k weights:")
    for name in found["offline"]:
        print(f"  {name}")
    if args.all:
        print("timm architectures (pretrained weights need the hub; --no-pretrained for random):")
        print("  " + "\n  ".join(found["timm"]))
        print("torchvision architectures (use torchvision:NAME):")
        print("  " + "\n  ".join(found["torchvision"]))
    else:
        print(f"plus {len(found['timm'])} timm and {len(found['torchvision'])} torchvision architectures "
              "matching the pattern (--all lists them; their pretrained weights need a hub)")
    return 0


def _add_setting_args(parser: argparse.ArgumentParser) -> None:
    """Preset, seed, device, a flag for every :class:`~piikit.InversionConfig` field (made from
    the field: its type, its choices, its comment as the help), and ``--set`` for any field."""
    from piikit.engine.config import DEFAULT_PRESET, PRESETS, InversionConfig
    from piikit.validation import choices_of, field_types

    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    settings = parser.add_argument_group("settings", "each InversionConfig field; a flag not given keeps the "
                                         "preset's value")
    types = field_types(InversionConfig)
    for name, doc in InversionConfig.field_docs().items():
        flag, annotation = "--" + name.replace("_", "-"), types[name]
        common: dict[str, Any] = dict(dest=name, default=argparse.SUPPRESS, help=doc.replace("%", "%%"))
        if annotation is bool:
            settings.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif choices_of(annotation) and not _takes_numbers(annotation):
            settings.add_argument(flag, choices=choices_of(annotation), **common)
        else:
            settings.add_argument(flag, type=_setting_value, metavar=name.upper(), **common)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config field, e.g. --set amp=true")


def _takes_numbers(annotation: Any) -> bool:
    """Whether a field's type admits numbers besides its choices (micro_batch: a count or "auto")."""
    import typing

    return any(a in (int, float) for a in typing.get_args(annotation))


def _batch_arg(text: str) -> int | str:
    """``--batch``: a count, or ``auto``."""
    return "auto" if text.strip().lower() == "auto" else int(text)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from piikit.interfaces.runner import parse_classes, sweep
    from piikit.interfaces.torchrun import runner_process
    from piikit.validation import check_int

    if args.batch != "auto":
        check_int("--batch", args.batch, low=1)
    classes: list[int | str] = list(args.class_names or [])
    for spec in args.classes or []:
        classes += parse_classes(spec)
    if args.classes_file:
        classes += parse_classes(_read_class_lines(args.classes_file))
    if not classes:
        raise ValueError("give classes: --classes 0-9,volcano, --class NAME or --classes-file FILE")
    if not str(args.out).strip():
        raise ValueError("--out is empty; give a directory ('.' for the current one)")
    from pathlib import Path

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is an existing file; give a directory (it is created if missing)")
    with runner_process(args.device) as caught:  # torchrun's rank → device, CPU share, SIGTERM as Ctrl-C
        summary = sweep(args.models, classes, args.preset, args.out, batch=args.batch, seed=args.seed,
                        device=args.device, force=args.force, pretrained=args.pretrained,
                        progress=not args.quiet, **_config_overrides(args))
    if summary.interrupted:
        return caught.exit_code
    return 1 if summary.failed else 0


def _cmd_atlas(args: argparse.Namespace) -> int:
    from piikit.interfaces.atlas import atlas
    from piikit.interfaces.runner import parse_classes

    classes = parse_classes(args.classes) if args.classes else None
    if classes is not None and not args.model:
        raise ValueError("--classes runs a sweep first: give --model too")
    checks: bool | dict[str, object] = args.sanity
    if args.sanity and (args.sanity_seeds != 1 or args.sanity_cascade):
        checks = {"seeds": args.sanity_seeds,
                  "cascade": tuple(float(v) for v in args.sanity_cascade.split(",") if v.strip())}
    index = atlas(args.runs, args.out, model=args.model, evaluators=args.evaluators, analyze=not args.no_analysis,
                  sanity=checks, classes=classes, preset=args.preset, device=args.device, progress=not args.quiet)
    print(f"open {index.resolve().as_uri()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piikit", description="Plug-In Inversion of image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    inv = sub.add_parser("invert", help="synthesize one image per class and save PNGs + result.json")
    inv.add_argument("--model", default="efficientnet_lite0", help="name, timm:NAME, torchvision:NAME or file")
    inv.add_argument("--class", dest="classes", action="append", metavar="CLASS", help="name or index; repeatable")
    inv.add_argument("--classes-file", help="a file with one class per line")
    inv.add_argument("--out", default="out")
    inv.add_argument("--batch", type=int, default=8, help="classes optimized together per batch")
    _add_setting_args(inv)
    inv.add_argument("--checkpoint", help="a state dict for --model's architecture")
    inv.add_argument("--no-pretrained", dest="pretrained", action="store_false")
    inv.add_argument("--trust-pickle", action="store_true", help="allow a pickled model file (runs its code)")
    inv.add_argument("--snapshots", action="store_true", help="also save each class's stages")
    inv.add_argument("--score", action="store_true", help="score the images with other offline models")
    inv.add_argument("--quiet", action="store_true", help="no progress bar")
    inv.set_defaults(run=_cmd_invert)

    swe = sub.add_parser("sweep", help="invert many classes of many models into a resumable folder (torchrun-ready)",
                         description="One PNG + result JSON per class per model, a manifest and a contact sheet per "
                         "model. Re-run to resume; run under `torchrun --nproc_per_node=N -m piikit sweep ...` to "
                         "share the work among N processes (one GPU each where there are GPUs).")
    swe.add_argument("--models", default="efficientnet_lite0", help="comma-separated model names")
    swe.add_argument("--classes", action="append", metavar="SPEC", help="indices, names and ranges: 0-99,volcano; repeatable")
    swe.add_argument("--class", dest="class_names", action="append", metavar="NAME", help="one class name or index; repeatable")
    swe.add_argument("--classes-file", help="a file with one class, index or range per line")
    swe.add_argument("--out", default="runs")
    swe.add_argument("--batch", type=_batch_arg, default=1,
                     help="classes optimized together per call (part of the settings); auto: what fills a GPU (1 elsewhere)")
    _add_setting_args(swe)
    swe.add_argument("--force", action="store_true", help="redo classes made with other settings instead of refusing")
    swe.add_argument("--no-pretrained", dest="pretrained", action="store_false")
    swe.add_argument("--quiet", action="store_true", help="no per-class lines or progress bar")
    swe.set_defaults(run=_cmd_sweep)

    sco = sub.add_parser("score", help="score saved inversions with other models (top-1/top-5, target prob, TV)",
                         description="Score the PNGs a `piikit invert --out DIR` run saved, against their targets, "
                         "with evaluator models; the rows are added to DIR/result.json.")
    sco.add_argument("directory", help="a directory holding result.json and its PNGs")
    sco.add_argument("--evaluator", dest="evaluators", action="append", metavar="MODEL",
                     help="an evaluator model name; repeatable (default: the offline models other than the inverted one)")
    sco.add_argument("--device", default="auto")
    sco.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    sco.add_argument("--no-resize", dest="resize", action="store_false",
                     help="feed the images at their own size to evaluators that accept any size "
                     "(default: resize to each evaluator's input size)")
    sco.add_argument("--json", action="store_true", help="print the rows and summary as JSON")
    sco.add_argument("--no-save", dest="no_save", action="store_true", help="do not write the scores into result.json")
    sco.set_defaults(run=_cmd_score)

    atl = sub.add_parser("atlas", help="a sweep folder as an offline HTML site: every class, searchable, with scores",
                         description="Build RUNS/atlas/index.html from a sweep folder (open it from the file system): "
                         "thumbnails, search, sort and filter, a page per class with scores, top-5, sanity checks "
                         "and Grad-CAM. With --model and --classes it runs the sweep first.")
    atl.add_argument("runs", help="a sweep's --out folder (or one model's folder in it)")
    atl.add_argument("--out", help="where the site goes (default RUNS/atlas)")
    atl.add_argument("--model", help="the inverted model (default: read from the results; offline models only)")
    atl.add_argument("--evaluator", dest="evaluators", action="append", metavar="MODEL",
                     help="score with this model where the sweep did not; repeatable")
    atl.add_argument("--classes", help="run a sweep of these classes first (needs --model), e.g. 0-999")
    atl.add_argument("--preset", default="preview", help="the sweep's preset with --classes")
    atl.add_argument("--no-analysis", action="store_true", help="no top-5, scores or Grad-CAM (fast)")
    atl.add_argument("--sanity", action="store_true",
                     help="run piikit.sanity on classes that have no checks yet: one more inversion per class at "
                     "the sweep's setting (all-layer randomization), plus transfer and naturalness")
    atl.add_argument("--sanity-seeds", type=int, default=1, metavar="N",
                     help="with --sanity: N seeds for seed stability (N - 1 more inversions per class)")
    atl.add_argument("--sanity-cascade", default="", metavar="LEVELS",
                     help="with --sanity: cascading randomization levels, e.g. 0,0.5 (one inversion per level)")
    atl.add_argument("--device", default="auto")
    atl.add_argument("--quiet", action="store_true")
    atl.set_defaults(run=_cmd_atlas)

    cls = sub.add_parser("classes", help="list or search the ImageNet class names")
    cls.add_argument("--search", help="a word; close spellings are found too")
    cls.add_argument("--limit", type=int, default=20)
    cls.set_defaults(run=_cmd_classes)

    mod = sub.add_parser("models", help="list the models piikit can load")
    mod.add_argument("--pattern", default="*")
    mod.add_argument("--all", action="store_true")
    mod.set_defaults(run=_cmd_models)
    return parser


def _one_line_warnings() -> None:
    """Warnings as one line each (``piikit: warning: ...``), without Python's source line;
    the interrupt warning is left out (the command says it in its own line)."""
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"piikit: warning: {message}\n"
    warnings.filterwarnings("ignore", message="interrupted at step")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt as stop:  # before a run started (importing torch, loading a model): nothing to save
        print(f"piikit: {str(stop) or 'interrupted before any work was done'}", file=sys.stderr)
        return getattr(stop, "exit_code", 130)  # 143 for SIGTERM (torchrun.Terminated)


def _main(argv: Sequence[str] | None) -> int:
    set_process_defaults()
    _one_line_warnings()
    from piikit.errors import PiikitError, WriteFailed

    parser = build_parser()  # imports torch (the presets' choices)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except WriteFailed as error:
        print(f"piikit: error: {error}", file=sys.stderr)
        return 1
    except (PiikitError, ValueError, TypeError, FileNotFoundError) as error:
        # A PiikitError may say it in the command's own terms (flags, not Python calls).
        print(f"piikit: error: {getattr(error, 'cli_message', None) or error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that cannot be read or written: its path and the reason
        where = f"{error.filename}: " if error.filename else ""
        print(f"piikit: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
