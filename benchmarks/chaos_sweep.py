"""Chaos: a sweep of many classes by two processes on one folder, killed with SIGKILL at
random moments (while starting, while computing, and while a file is being saved) and
restarted until both finish. Then every class must exist exactly once, complete and readable,
the manifest must list each class once (lines it recovered for killed processes say so), and
`piikit score` must read the folder. Prints a summary, writes the record as JSON, and exits 1
if any check fails.

    python benchmarks/chaos_sweep.py                          # Lite0, preview, 60 classes, 40 kills
    python benchmarks/chaos_sweep.py --model test_resnet --image-size 32 --kills 20 --no-baseline \\
        --json /tmp/chaos.json                                # what tests/test_chaos.py runs

Kinds of kill, drawn at random for each: "start" (at a random moment of the first seconds:
imports, model loading, the settings check), "work" (a random moment after the process said
its first stage ended), "save" (the moment the process holds a file open under its
temporary name: a PNG or JSON being written) and "unlogged" (the moment a class's files are in
place but the manifest does not list it yet; one of the two processes is committing it, so
about half of these land in the window the manifest's recovery is for). The time overhead is
the chaos run's wall time against the same two processes uninterrupted (``--no-baseline``
skips that run). The numbers: docs/benchmarks.md ("A sweep killed 40 times").
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("start", "work", "work", "save", "unlogged")  # "work" twice: most of a sweep's life is computing


class Slot:
    """One of the two sweep processes, restarted each time it is killed."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.started = 0.0
        self.runs = 0
        self.finished = False  # its last run exited 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=lambda out=self.lines, p=self.proc: out.extend(p.stderr), daemon=True).start()
        self.started = time.monotonic()
        self.runs += 1

    def working(self) -> bool:
        return any("stage 1/" in line for line in list(self.lines))

    def saving(self, folders: list[Path]) -> bool:
        """Whether the process holds a sweep file open under its temporary name."""
        assert self.proc is not None
        try:
            targets = [os.readlink(f"/proc/{self.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{self.proc.pid}/fd")]
        except OSError:  # it ended meanwhile
            return False
        return any(t.endswith(".tmp") and Path(t).parent in folders for t in targets)


def finished(folders: list[Path]) -> int:
    """How many classes have their JSON in place."""
    return sum(1 for _ in folders[1].glob("*.result.json")) if folders else 0


def unlogged(folders: list[Path]) -> bool:
    """Whether more classes are finished (their JSON in place) than the manifest lists."""
    if not folders:
        return False
    try:
        logged = (folders[0] / "manifest.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        logged = 0
    return finished(folders) > logged


def run_two(command: list[str], env: dict[str, str], kills: int, rng: random.Random, folders: list[Path],
            timeout: float, classes: int = 1) -> dict[str, object]:
    """Run two copies of ``command`` (a sweep of ``classes`` classes) to completion, killing
    them ``kills`` times in all.

    The kills are paced against the sweep's progress: while a larger share of the classes is
    done than of the kills, the next kill comes at once (while starting up, before a class can
    finish), so a fast machine cannot finish the sweep before the budget is spent."""
    slots = [Slot(command, env), Slot(command, env)]
    for slot in slots:
        slot.start()
    plans: dict[int, tuple[str, float]] = {}
    done_kills: collections.Counter[str] = collections.Counter()
    exit_codes: collections.Counter[int] = collections.Counter()
    started = time.monotonic()
    while not all(s.finished for s in slots):
        if time.monotonic() - started > timeout:
            for slot in slots:
                if slot.proc is not None and slot.proc.poll() is None:
                    slot.proc.kill()
            raise TimeoutError(f"the chaos run did not finish in {timeout:g} s")
        for i, slot in enumerate(slots):
            if slot.finished:
                continue
            assert slot.proc is not None
            code = slot.proc.poll()
            if code is not None:  # it ended: by our kill (restart it) or by itself
                exit_codes[code] += 1
                plans.pop(i, None)
                if code == 0:
                    slot.finished = True
                else:
                    if code != -signal.SIGKILL:
                        print(f"  run ended with {code}: {''.join(slot.lines)[-600:]}", file=sys.stderr)
                    slot.start()
                continue
            if sum(done_kills.values()) + len(plans) >= kills and i not in plans:
                continue  # the kill budget is spent or promised: let it finish
            now, share = time.monotonic(), finished(folders) / classes
            if i not in plans:
                if share > (sum(done_kills.values()) + len(plans)) / kills:
                    young = now - slot.started < 0.5
                    plans[i] = ("start" if young else "work", slot.started + rng.uniform(0.0, 0.5) if young else now)
                else:
                    # Until one kill has landed mid-save, one slot's kill waits for a save: a sweep
                    # of short classes has brief save moments, and random kinds could miss them all.
                    wait_for_save = not done_kills["save"] and all(k != "save" for k, _ in plans.values())
                    kind = "save" if wait_for_save else rng.choice(KINDS)
                    plans[i] = (kind, slot.started + rng.uniform(0.0, 6.0) if kind == "start" else 0.0)
            kind, at = plans[i]
            if share > 0.8:
                # Late: a kill waiting for a start, a save or an unlogged moment could miss every
                # such moment of the last short classes and let the sweep end with kills unspent.
                kind, at = "work" if slot.working() else "start", now
                plans[i] = (kind, at)
            if kind == "start":
                fire = now >= at
            elif kind == "work":
                if not at and slot.working():
                    plans[i] = (kind, now + rng.uniform(0.0, 1.5))
                fire = bool(plans[i][1]) and now >= plans[i][1]
            elif kind == "save":  # once it works, at the moment a temporary file is open
                fire = slot.working() and slot.saving(folders)
            else:  # "unlogged": a class's files are in place but its manifest line is not (yet)
                fire = slot.working() and unlogged(folders)
            if fire:
                slot.proc.send_signal(signal.SIGKILL)
                slot.proc.wait()  # reaped before the next look at it, so one kill counts once
                plans.pop(i)
                if slot.proc.returncode == -signal.SIGKILL:  # not if it had just ended by itself
                    done_kills[kind] += 1
        time.sleep(0.003)
    return {"kills": sum(done_kills.values()), "kills_by_kind": dict(done_kills), "runs": sum(s.runs for s in slots),
            "exit_codes": {str(k): v for k, v in exit_codes.items()}, "wall_s": round(time.monotonic() - started, 1)}


def check(out: Path, model_folder: str, classes: int, env: dict[str, str], evaluator: str) -> dict[str, object]:
    """What the folder holds after the chaos, checked file by file."""
    sys.path.insert(0, str(REPO))
    from piikit.images import read_png

    folder = out / model_folder
    metas = sorted(folder.glob("*.result.json"))
    per_class = collections.Counter(int(p.name[:4]) for p in metas)
    pngs = collections.Counter(int(p.name[:4]) for p in folder.glob("[0-9][0-9][0-9][0-9]_*.png"))
    unreadable = []
    for meta_path in metas:
        try:
            meta = json.loads(meta_path.read_text())
            image = read_png(folder / meta["files"][0])
            assert meta["targets"][0]["index"] == int(meta_path.name[:4]) and not meta.get("interrupted")
            assert image.ndim == 3 and image.shape[0] == 3
        except Exception as error:  # any way a file can be cut short or wrong
            unreadable.append(f"{meta_path.name}: {type(error).__name__}: {error}")
    lines = (out / "manifest.jsonl").read_text().split("\n")
    records = [json.loads(line) for line in lines if line.strip()]
    logged = collections.Counter(r["class"] for r in records)
    leftovers = sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp")) + (
        [".claims"] if (out / ".claims").exists() else [])
    scored = subprocess.run([sys.executable, "-m", "piikit", "score", str(folder), "--evaluator", evaluator,
                             "--no-save", "--json", "--device", "cpu"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=900)
    rows = json.loads(scored.stdout)["rows"] if scored.returncode == 0 else []
    return {
        "classes": classes,
        "classes_present": len(per_class),
        "missing": sorted(set(range(classes)) - set(per_class)),
        "not_one_png_and_json": sorted(c for c, n in (per_class + pngs).items() if n != 2),
        "unreadable": unreadable,
        "manifest_lines": len(records),
        "manifest_duplicates": sorted(c for c, n in logged.items() if n > 1),
        "manifest_missing": sorted(set(range(classes)) - set(logged)),
        "recovered_lines": sum(bool(r.get("recovered")) for r in records),
        "leftovers": leftovers,
        "contact_sheet": (folder / "contact_sheet.png").is_file(),
        "score_exit": scored.returncode,
        "score_rows": len(rows),
        "score_error": scored.stderr.strip()[-300:] if scored.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--classes", type=int, default=60, help="classes 0..N-1")
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--image-size", type=int, help="default: the model's")
    parser.add_argument("--seed", type=int, default=0, help="of the kill schedule")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the uninterrupted run")
    parser.add_argument("--evaluator", default="efficientnet_lite0", help="the model `piikit score` reads with")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "chaos_sweep.json"))
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    sweep_args = ["--models", args.model, "--device", "cpu", "--preset", "preview", "--classes",
                  f"0-{args.classes - 1}"]
    if args.model.startswith("test_"):
        sweep_args.append("--no-pretrained")  # timm's test models have no published weights
    if args.image_size:
        sweep_args += ["--image-size", str(args.image_size)]
    record: dict[str, object] = {"command": " ".join(sys.argv), "model": args.model, "preset": "preview",
                                 "classes": args.classes, "seed": args.seed, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            out = Path(tmp) / "baseline"
            command = [sys.executable, "-m", "piikit", "sweep", *sweep_args, "--out", str(out)]
            record["baseline"] = run_two(command, env, 0, random.Random(args.seed), [], args.timeout)
        out = Path(tmp) / "chaos"
        command = [sys.executable, "-m", "piikit", "sweep", *sweep_args, "--out", str(out)]
        folder = args.model.replace("-", "_")
        chaos = run_two(command, env, args.kills, random.Random(args.seed), [out, out / folder], args.timeout,
                        args.classes)
        record["chaos"] = chaos
        record["check"] = result = check(out, folder, args.classes, env, args.evaluator)
    if args.baseline:
        record["overhead"] = round(chaos["wall_s"] / record["baseline"]["wall_s"], 2)  # type: ignore[index]
        record["overhead_per_kill_s"] = round(
            (chaos["wall_s"] - record["baseline"]["wall_s"]) / max(1, chaos["kills"]), 1)  # type: ignore[index,operator]
    record["load_after"] = os.getloadavg()[0]
    ok = (not result["missing"] and not result["not_one_png_and_json"] and not result["unreadable"]
          and not result["manifest_duplicates"] and not result["manifest_missing"] and not result["leftovers"]
          and result["contact_sheet"] and result["score_exit"] == 0 and result["score_rows"] == args.classes)
    record["ok"] = bool(ok)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
