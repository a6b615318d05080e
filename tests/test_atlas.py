"""The atlas (piikit.atlas / `piikit atlas`): a sweep folder as an offline HTML site. The
site's data and files here; search, sort and a class page in headless Chromium at the end
(Debian's chromium driven by Playwright, as in test_browser.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import piikit
from piikit.interfaces.atlas import SITE_FILES
from piikit.interfaces.cli import main

SWEEP = dict(image_size=32, stages=2, steps_per_stage=3, ensemble=2)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _data(site: Path) -> dict:
    text = (site / "data.js").read_text()
    assert text.startswith("window.ATLAS = ") and text.rstrip().endswith(";")
    return json.loads(text.removeprefix("window.ATLAS = ").rstrip().rstrip(";"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_cnn: torch.nn.Module) -> tuple[Path, piikit.Classifier]:
    out = tmp_path_factory.mktemp("atlas") / "runs"
    model = piikit.load_model(tiny_cnn)
    model.name = "tiny_cnn"
    piikit.sweep(model, "1-5,goldfinch", "preview", out, progress=False, sheets=False, **SWEEP)
    return out, model


def test_every_class_gets_a_record_thumbnail_top5_and_gradcam(runs, tiny_vit):
    out, model = runs
    judge = piikit.load_model(tiny_vit)
    judge.name = "tiny_vit"
    index = piikit.atlas(out, model=model, evaluators=[judge], progress=False)
    site = index.parent
    assert index == out / "atlas" / "index.html"
    assert all((site / name).is_file() for name in SITE_FILES)
    html = index.read_text()
    assert "http://" not in html and "https://" not in html  # offline: no CDN
    data = _data(site)
    assert sorted(e["index"] for e in data["entries"]) == [1, 2, 3, 4, 5, 11]
    for e in data["entries"]:
        assert (site / e["thumb"]).is_file() and (site / e["cam"]).is_file()
        assert (site / e["image"]).resolve() == (out / e["folder"] / Path(e["image"]).name).resolve()
        assert len(e["top5"]) == 5 and e["top5"][0][1] >= e["top5"][-1][1]
        assert set(e["scores"]) == {"tiny_vit"} and e["tv"] > 0
    assert data["evaluators"] == ["tiny_vit"]


def test_a_rebuild_reuses_the_analysis_and_redoes_a_changed_image(runs):
    out, model = runs
    piikit.atlas(out, model=model, evaluators=[], progress=False)
    site = out / "atlas"
    cache = json.loads((site / "analysis.json").read_text())
    png = next((out / "tiny_cnn").glob("0002_*.png"))
    png.write_bytes(png.read_bytes())  # same pixels, a new time: counts as redone
    piikit.atlas(out, analyze=False, progress=False)
    after = json.loads((site / "analysis.json").read_text())
    key = f"tiny_cnn/{png.name}"
    assert "top5" not in after[key] and "top5" in cache[key]
    assert all(after[k] == v for k, v in cache.items() if k != key)


def test_it_runs_the_sanity_checks_once_and_the_page_gets_them(runs, tiny_vit, tmp_path, monkeypatch):
    out, model = runs
    judge = piikit.load_model(tiny_vit)
    judge.name = "tiny_vit"
    site = tmp_path / "site"
    piikit.atlas(out, site, model=model, evaluators=[judge], analyze=False, sanity=True, progress=False)
    entries = _data(site)["entries"]
    assert len(entries) == 6
    for e in entries:
        s = e["sanity"]
        assert 0 <= s["randomized"] <= 1 + 1e-6 and s["transfer_rank"] >= 1 and s["naturalness"] > 0
        assert s["seed_similarity"] is None and s["cascade"] == {}  # True: the core checks only
        assert s["thresholds"] == dataclasses.asdict(piikit.SanityThresholds()) and isinstance(s["flags"], list)
    cached = json.loads((site / "analysis.json").read_text())
    assert all("sanity" in v for v in cached.values())

    def refuse(*args, **kwargs):
        raise AssertionError("the checks ran again")

    monkeypatch.setattr("piikit.analysis.sanity.sanity", refuse)
    piikit.atlas(out, site, model=model, evaluators=[judge], analyze=False, sanity=True, progress=False)
    assert [e["sanity"] for e in _data(site)["entries"]] == [e["sanity"] for e in entries]


def test_the_sanity_options_reach_the_checks(runs, tmp_path):
    out, model = runs
    piikit.atlas(out, tmp_path / "site", model=model, evaluators=[], analyze=False, progress=False,
                 sanity={"seeds": 1, "randomize": False})
    s = _data(tmp_path / "site")["entries"][0]["sanity"]
    # No evaluators: only naturalness (the tiny CNN has BatchNorm) is measured.
    assert s["randomized"] is None and s["transfer_rank"] is None and s["naturalness"] > 0


def test_one_channel_models_and_their_class_names(tmp_path):
    names = [f"digit {i}" for i in range(10)]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    clf = piikit.load_model(net, input_size=16, mean=(0.5,), std=(0.5,), class_names=names)
    piikit.sweep(clf, "digit 3,7", "preview", tmp_path / "runs", progress=False, sheets=False, image_size=16,
                 stages=1, steps_per_stage=2, ensemble=2)
    piikit.atlas(tmp_path / "runs", model=clf, progress=False)
    data = _data(tmp_path / "runs" / "atlas")
    assert [e["label"] for e in data["entries"]] == ["3: digit 3", "7: digit 7"]
    assert all(lab.split(": ")[1] in names for e in data["entries"] for lab, _ in e["top5"])
    assert data["entries"][0]["scores"] == {}  # no ImageNet evaluators for a digits model


def test_the_command_builds_it_and_bad_folders_fail_in_one_line(runs, capsys, tmp_path):
    out, _ = runs
    assert main(["atlas", str(out), "--out", str(tmp_path / "site"), "--no-analysis", "--quiet"]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    assert "open file://" in capsys.readouterr().out
    assert main(["atlas", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["atlas", str(empty)]) == 2
    assert main(["atlas", str(empty), "--classes", "0-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("piikit: error:") for line in err)


def test_the_command_passes_the_sanity_options(runs, monkeypatch, tmp_path):
    out, _ = runs
    seen: list[object] = []

    def fake(*args, sanity=False, **kwargs):
        seen.append(sanity)
        return tmp_path / "index.html"

    monkeypatch.setattr("piikit.interfaces.atlas.atlas", fake)
    assert main(["atlas", str(out), "--quiet"]) == 0
    assert main(["atlas", str(out), "--sanity", "--quiet"]) == 0
    assert main(["atlas", str(out), "--sanity", "--sanity-seeds", "3", "--sanity-cascade", "0,0.5", "--quiet"]) == 0
    assert seen == [False, True, {"seeds": 3, "cascade": (0.0, 0.5)}]


def test_it_can_run_the_sweep_it_needs(tmp_path, tiny_cnn):
    model = piikit.load_model(tiny_cnn)
    with pytest.raises(ValueError, match="model"):
        piikit.atlas(tmp_path / "runs", classes="1-2")
    piikit.atlas(tmp_path / "runs", model=model, classes="1-2", preset="preview", analyze=False, progress=False)
    assert len(_data(tmp_path / "runs" / "atlas")["entries"]) == 2


@pytest.mark.browser
@pytest.mark.slow
def test_search_sort_and_a_class_page_in_chromium(runs, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    out, model = runs
    # Sanity checks where computed: planted in one class's result as piikit.sanity would write them.
    meta_path = next((out / "tiny_cnn").glob("0003_*.result.json"))
    meta = json.loads(meta_path.read_text())
    meta["sanity"] = {"rows": [{"target": 3, "randomized": 0.9, "randomized_ssim": 0.1, "cascade": {"top 1": 0.8},
                                "seed_similarity": 0.5, "seed_ssim": 0.0, "transfer_prob": 0.0, "transfer_rank": 400,
                                "naturalness": 2.0, "flags": ["randomization", "transfer"]}], "seeds": [0, 1, 2],
                      "thresholds": dataclasses.asdict(piikit.SanityThresholds())}
    meta_path.write_text(json.dumps(meta))
    index = piikit.atlas(out, model=model, evaluators=[], progress=False)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.resolve().as_uri())
            assert page.locator("#count").inner_text() == "6 of 6"
            page.fill("#search", "shark")
            names = page.locator("#grid .card .name").all_inner_texts()
            assert names == ["2: great white shark", "3: tiger shark"]
            page.fill("#search", "11")
            assert page.locator("#grid .card .name").all_inner_texts() == ["11: goldfinch"]
            page.fill("#search", "")
            page.select_option("#sort", "prob")
            page.click("#order")  # descending
            probs = {e["label"]: e["prob"] for e in _data(index.parent)["entries"]}
            shown = page.locator("#grid .card .name").all_inner_texts()
            assert shown == sorted(probs, key=lambda k: (-probs[k], int(k.split(":")[0])))
            page.select_option("#filter", "flag:randomization")
            assert page.locator("#grid .card .name").all_inner_texts() == ["3: tiger shark"]
            page.locator("#grid .card").first.click()
            page.wait_for_selector("#class-title")
            assert page.locator("#class-title").inner_text().startswith("3: tiger shark")
            assert page.locator("#top5 tr").count() == 6  # header + 5
            assert page.locator("#sanity-flags").inner_text() == "randomization, transfer"
            assert "\u2265 0.75" in page.locator("#sanity").inner_text()  # each flag's threshold beside its value
            assert page.locator("#full").evaluate("img => img.naturalWidth") == 32  # the full-size PNG loaded
            assert page.locator("#cam").evaluate("img => img.naturalWidth") == 32
            page.screenshot(path=str(tmp_path / "atlas-class.png"), full_page=True)
            page.click("#back")
            page.wait_for_selector("#grid:not([hidden])")
            assert page.locator("#detail").is_hidden()
        finally:
            browser.close()
    assert not errors
