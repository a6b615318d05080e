// The atlas page: a grid of every class (search, sort, filter) and a page per class (#class/FOLDER/INDEX).
// Data comes from data.js (window.ATLAS), so the site opens from file:// with no server.
(function () {
  "use strict";
  const data = window.ATLAS || { entries: [], evaluators: [], models: [] };
  const entries = data.entries.map((e, i) => Object.assign({ id: i }, e));
  const $ = (id) => document.getElementById(id);
  const grid = $("grid"), detail = $("detail");
  const CHECKS = ["randomization", "cascade", "transfer", "naturalness"];
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : typeof v === "number" ? v.toFixed(d) : esc(v));

  function meanEval(e) {
    const v = Object.values(e.scores || {}).map((s) => s.prob);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  }
  const flagsOf = (e) => (e.sanity ? e.sanity.flags || [] : []);

  // Every sortable key: [label, value(entry)]; keys a build does not have are left out.
  const keys = [
    ["index", "class index", (e) => e.index],
    ["name", "class name", (e) => e.name.toLowerCase()],
    ["prob", "model's own probability", (e) => e.prob],
    ["eval", "mean evaluator probability", meanEval],
    ...data.evaluators.map((ev) => ["ev:" + ev, ev + " probability", (e) => (e.scores[ev] ? e.scores[ev].prob : null)]),
    ["tv", "noise (TV per pixel)", (e) => e.tv],
    ["flags", "number of sanity flags", (e) => (e.sanity ? flagsOf(e).length : null)],
    ["randomized", "similarity to randomized model's image", (e) => (e.sanity ? e.sanity.randomized : null)],
    ["seed", "similarity across seeds", (e) => (e.sanity ? e.sanity.seed_similarity : null)],
    ["naturalness", "distance from natural statistics", (e) => (e.sanity ? e.sanity.naturalness : null)],
  ].filter(([k, , f]) => k === "index" || k === "name" || entries.some((e) => f(e) !== null && f(e) !== undefined));
  const keyFn = Object.fromEntries(keys.map(([k, , f]) => [k, f]));

  const sortSel = $("sort"), filterSel = $("filter"), modelSel = $("model"), orderBtn = $("order"), search = $("search");
  sortSel.innerHTML = keys.map(([k, lab]) => `<option value="${esc(k)}">${esc(lab)}</option>`).join("");
  const seenFlags = CHECKS.filter((c) => entries.some((e) => flagsOf(e).includes(c)));
  const filters = [["all", "all classes"]];
  if (entries.some((e) => e.sanity)) filters.push(["flagged", "flagged by any check"], ["clean", "passing every check"], ["checked", "with sanity checks"]);
  seenFlags.forEach((c) => filters.push(["flag:" + c, "flagged: " + c]));
  if (data.evaluators.length) filters.push(["missed", "no evaluator top-1"]);
  filterSel.innerHTML = filters.map(([k, lab]) => `<option value="${esc(k)}">${esc(lab)}</option>`).join("");
  modelSel.innerHTML = ['<option value="">all</option>'].concat(data.models.map((m) => `<option>${esc(m)}</option>`)).join("");
  if (data.models.length < 2) modelSel.parentElement.hidden = true;
  $("source").textContent = `${data.source} · ${entries.length} classes`;
  let descending = false;
  orderBtn.textContent = "\u2191 asc";

  // One card per class, built once; sorting and filtering only move and hide them.
  const cards = entries.map((e) => {
    const a = document.createElement("a");
    a.className = "card" + (flagsOf(e).length ? " flagged" : "");
    a.href = `#class/${encodeURIComponent(e.folder)}/${e.index}`;
    a.dataset.id = e.id;
    const ev = meanEval(e);
    a.innerHTML = `<img loading="lazy" decoding="async" width="112" height="112" alt="${esc(e.label)}" src="${esc(e.thumb)}">` +
      `<div class="name" title="${esc(e.label)}">${esc(e.label)}</div>` +
      `<div class="stat">${[e.prob === null || e.prob === undefined ? "" : `p=${fmt(e.prob, 2)}`,
        ev === null ? "" : `eval ${fmt(ev, 2)}`].filter(Boolean).join(" · ") || "&nbsp;"}</div>` +
      (flagsOf(e).length ? `<div class="flags">${esc(flagsOf(e).join(", "))}</div>` : "");
    return a;
  });

  function matches(e, q) {
    if (!q) return true;
    if (/^\d+$/.test(q)) return e.index === Number(q);
    return e.label.toLowerCase().includes(q);
  }
  function passes(e, f) {
    const fl = flagsOf(e);
    if (f === "flagged") return fl.length > 0;
    if (f === "clean") return !!e.sanity && fl.length === 0;
    if (f === "checked") return !!e.sanity;
    if (f === "missed") return !Object.values(e.scores || {}).some((s) => s.rank === 1);
    if (f.startsWith("flag:")) return fl.includes(f.slice(5));
    return true;
  }

  function render() {
    const q = search.value.trim().toLowerCase(), f = filterSel.value, m = modelSel.value, key = keyFn[sortSel.value];
    const shown = entries.filter((e) => (!m || e.model === m) && matches(e, q) && passes(e, f));
    shown.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return a.index - b.index;
      if (x === null || x === undefined) return 1; // missing values last, either order
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
    const frag = document.createDocumentFragment();
    shown.forEach((e) => frag.appendChild(cards[e.id]));
    grid.replaceChildren(frag);
    $("count").textContent = `${shown.length} of ${entries.length}`;
  }

  function row(cells, head) {
    const tag = head ? "th" : "td";
    const cell = (c) => (typeof c === "number" || c === null || c === undefined ? `<td class="num">${fmt(c)}</td>` : `<${tag}>${c}</${tag}>`);
    return "<tr>" + cells.map(cell).join("") + "</tr>";
  }

  function showClass(folder, index) {
    const e = entries.find((x) => x.folder === folder && x.index === index);
    if (!e) { location.hash = ""; return; }
    const visible = [...grid.children].map((c) => Number(c.dataset.id));
    const pos = visible.indexOf(e.id);
    const link = (id, text) => (id === undefined ? `<span class="muted">${text}</span>` : `<a href="#class/${encodeURIComponent(entries[id].folder)}/${entries[id].index}">${text}</a>`);
    const scores = Object.entries(e.scores || {});
    const s = e.sanity;
    let sanity = '<p class="muted">No sanity checks for this class: run <code>piikit.sanity(model, result)</code> before saving.</p>';
    if (s) {
      const flags = s.flags.length ? `<span class="flag">${esc(s.flags.join(", "))}</span>` : '<span class="ok">passes every check</span>';
      const t = s.thresholds || {};
      const when = (op, v) => (v === undefined || v === null ? "–" : `${op} ${v}`);
      const rand = when("\u2265", t.randomization);
      sanity = `<p id="sanity-flags">${flags}</p><table id="sanity">` +
        row(["check", "value", "flag when"], true) +
        row(["cosine to all-layer randomized model's image", s.randomized, rand]) +
        row(["SSIM to it", s.randomized_ssim, "reported"]) +
        Object.entries(s.cascade || {}).map(([lvl, v]) => row([`cosine, randomized ${esc(lvl)}`, v, rand])).join("") +
        row(["cosine across seeds" + (s.seeds && s.seeds.length > 1 ? ` (${esc(s.seeds.join(", "))})` : ""), s.seed_similarity, "reported"]) +
        row(["SSIM across seeds", s.seed_ssim, "reported"]) +
        row(["evaluators' mean probability", s.transfer_prob, "reported"]) +
        row(["best evaluator rank", s.transfer_rank === null ? "–" : String(s.transfer_rank), when(">", t.transfer_rank)]) +
        row(["distance from natural statistics", s.naturalness, when(">", t.naturalness)]) + "</table>" +
        '<p class="muted">An image as similar to a randomized model\'s as the threshold is the method\'s, not the model\'s; ' +
        "other models should rank the class near the top; natural photos sit below the naturalness threshold.</p>";
    }
    detail.innerHTML =
      `<div class="nav"><a href="#" id="back">&larr; all classes</a>${link(visible[pos - 1], "&lsaquo; previous")}${link(visible[pos + 1], "next &rsaquo;")}</div>` +
      `<h2 id="class-title">${esc(e.label)} <span class="muted">· ${esc(e.model)}</span></h2>` +
      `<div class="pictures"><figure><img id="full" src="${esc(e.image)}" alt="${esc(e.label)}"><figcaption>the inversion (seed ${fmt(e.seed, 0)}${e.preset ? ", " + esc(e.preset) : ""})</figcaption></figure>` +
      (e.cam ? `<figure><img id="cam" src="${esc(e.cam)}" alt="Grad-CAM"><figcaption>Grad-CAM of ${esc(e.label)} on it</figcaption></figure>` : "") +
      `</div><div class="tables">` +
      `<div><h3>Run</h3><table>${row(["seed", e.seed === null ? "–" : String(e.seed)])}${row(["model's probability", e.prob])}${row(["TV per pixel", e.tv])}${row(["seconds", e.seconds])}</table></div>` +
      `<div><h3>Evaluators</h3>${scores.length ? "<table id=\"scores\">" + row(["evaluator", "prob", "rank"], true) + scores.map(([ev, v]) => row([esc(ev), v.prob, String(v.rank)])).join("") + "</table>" : '<p class="muted">not scored</p>'}</div>` +
      `<div><h3>The model's top-5 on it</h3>${e.top5.length ? "<table id=\"top5\">" + row(["class", "prob"], true) + e.top5.map(([lab, p]) => row([esc(lab), p])).join("") + "</table>" : '<p class="muted">not computed</p>'}</div>` +
      `<div><h3>Sanity checks</h3>${sanity}</div></div>`;
    grid.hidden = true;
    detail.hidden = false;
    window.scrollTo(0, 0);
  }

  function route() {
    const m = /^#class\/([^/]+)\/(\d+)$/.exec(location.hash);
    if (m) { showClass(decodeURIComponent(m[1]), Number(m[2])); return; }
    detail.hidden = true;
    grid.hidden = false;
  }

  search.addEventListener("input", render);
  [sortSel, filterSel, modelSel].forEach((el) => el.addEventListener("change", render));
  orderBtn.addEventListener("click", () => {
    descending = !descending;
    orderBtn.textContent = descending ? "\u2193 desc" : "\u2191 asc";
    render();
  });
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && grid.firstChild) location.hash = grid.firstChild.getAttribute("href");
  });
  window.addEventListener("hashchange", route);
  render();
  route();
})();
