"""Benchmark: does a session slow down as it is used (issue #21 item 3)?

A real ``hearsight serve`` on a tiny checkpoint (a randomly initialised ``ddevis_cnn`` over the
10 FSDD digits, like the browser tests'; nothing is trained) is driven by headless Chromium
(playwright, Debian's ``/usr/bin/chromium``; never ``playwright install``).

Fresh (A): separate fresh sessions opened by link — ``?tab=maximise`` (a maximisation of
``--steps`` steps, ``--starts`` starts, timed from the Run click to the final step shown:
counter ``step N / N`` and N points on the objective curve), ``?tab=strips`` (a strip of
``--frames`` frames is built, then one step of its frame player is timed from the player's new
value to the shown card naming that frame) and ``?tab=embeddings`` (Compute, then one layer
step of the morph slider, timed to the caption naming that layer).

Visited (B): one session visits every tab (Inspect with an uploaded FSDD clip, Edit & compare,
Explain with its automatic analysis, Maximise, Strips with a strip built, Embeddings with
Compute), visits every tab a second time, then the same timings are taken in it.

After each step the browser's Bokeh models (``Bokeh.documents[0]._all_models``) and views
(walking ``Bokeh.index``) are counted. Medians over ``--repeats`` repeats; the ratio
visited/fresh is the figure (target ≤ 1.5×). The fresh sessions are measured again after the
visited one (``fresh_after``) so that a change in machine load shows; ``os.getloadavg()`` is
recorded before and after.

Run from the repository root: ``python3 benchmarks/session_growth.py [--quick]``; prints a
table and writes ``benchmarks/results/session_growth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
sys.path.insert(0, str(ROOT / "benchmarks"))

FSDD = ROOT.parent / "shared" / "data" / "fsdd"
CLIP = "7_jackson_0.wav"
TABS = ["Inspect", "Edit & compare", "Explain", "Maximise", "Strips", "Embeddings"]
TIMEOUT_MS = int(os.environ.get("HS_BENCH_TIMEOUT_MS", 300_000))


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
VIEWPORT = {"width": 1280, "height": 800}

# Models in the page's Bokeh documents, and the views BokehJS holds for them (each view's
# subtree, walked depth first from the roots in Bokeh.index).
COUNT_JS = """() => {
  let models = 0;
  for (const d of Bokeh.documents) models += d._all_models.size;
  const seen = new Set();
  const walk = (view) => {
    if (seen.has(view)) return;
    seen.add(view);
    for (const child of view.children()) walk(child);
  };
  for (const root of Bokeh.index) walk(root);
  return {models, views: seen.size};
}"""

# The Bokeh model of the widget with css class ``cls``: set its value as a user's action would
# (the change travels to the server like a click on the player or a drag of the slider).
SET_VALUE_JS = """([cls, value]) => {
  for (const d of Bokeh.documents)
    for (const m of d._all_models.values())
      if (m.css_classes && m.css_classes.includes(cls) && 'value' in m) {
        m.value = value; return true; }
  return false;
}"""

# Points on the objective curve: the "step" column of the figure titled "Objective per step".
CURVE_LEN_JS = """() => {
  for (const d of Bokeh.documents)
    for (const m of d._all_models.values()) {
      if (!m.renderers || !m.title || m.title.text !== "Objective per step") continue;
      for (const r of m.renderers)
        if (r.data_source && r.data_source.data && r.data_source.data.step)
          return r.data_source.data.step.length;
    }
  return 0;
}"""


def counts(page) -> dict:
    return page.evaluate(COUNT_JS)


def open_session(browser, url: str):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(".hs-upload input[type=file]").wait_for(state="attached")
    return context, page


def settle(page, ms: int = 1000) -> None:
    page.wait_for_timeout(ms)  # let pending patches arrive before counting


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def show_tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).first.click()


def shows(page, css: str, text: str):
    """The element with css class ``css`` once its text (shadow roots included) has ``text``."""
    return page.locator(f".{css}").filter(has_text=text)


# -- preparing a tab, and the three timings -------------------------------------------------
def prepare_maximise(page, args) -> None:
    page.locator(".hs-actmax-run button").wait_for(state="visible")
    set_number(page, "Steps", args.steps)
    set_number(page, "Starts", args.starts)
    settle(page)


def time_maximisation(page, args, r: int) -> float:
    """Seconds from the Run click until the curve, reset by the run, holds ``steps`` points
    and the counter reads ``step N / N`` (polled every ~50 ms)."""
    steps = args.steps
    page.locator(".hs-actmax-run button:not([disabled])").wait_for()
    counter, reset = shows(page, "hs-actmax-step", f"step {steps} / {steps}"), False
    t0 = time.perf_counter()
    page.locator(".hs-actmax-run button").click()
    while True:
        n = page.evaluate(CURVE_LEN_JS)
        reset = reset or n < steps
        if reset and n == steps and counter.count():
            took = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > TIMEOUT_MS / 1000:
            raise TimeoutError(f"no step {steps} / {steps} after {TIMEOUT_MS / 1000:.0f} s "
                               f"(curve: {n})")
        page.wait_for_timeout(50)
    # The run's end (verdict, audio) before the next run can start.
    shows(page, "hs-actmax-verdict", f"after {steps} step(s)").wait_for()
    page.locator(".hs-actmax-run button:not([disabled])").wait_for()
    return took


def build_strip(page, args) -> None:
    page.locator(".hs-strip-build button").wait_for(state="visible")
    set_number(page, "Frames (K)", args.frames)
    settle(page)
    page.locator(".hs-strip-build button").click()
    page.locator(".hs-strip-player").wait_for(state="visible")
    shows(page, "hs-strip-shown", "frame 0 ").wait_for()


def time_player_step(page, args, r: int) -> float:
    """One step of the frame player (from frame 0 or the last one timed) to frame ``k``."""
    k = 1 + r % args.frames
    t0 = time.perf_counter()
    assert page.evaluate(SET_VALUE_JS, ["hs-strip-player", k]), "no strip player model"
    shows(page, "hs-strip-shown", f"frame {k} ").wait_for()
    return time.perf_counter() - t0


def compute_embeddings(page, args=None) -> None:
    page.locator(".hs-emb-compute button").click()
    shows(page, "hs-emb-progress", "points ·").wait_for()
    shows(page, "hs-emb-position", "1 of").wait_for()


def time_layer_step(page, args, r: int) -> float:
    layer = 1 + r % 5
    t0 = time.perf_counter()
    assert page.evaluate(SET_VALUE_JS, ["hs-emb-slider", float(layer)]), "no layer slider model"
    shows(page, "hs-emb-position", f"({layer + 1} of").wait_for()
    return time.perf_counter() - t0


# (tab, its link, what one step is, result key, preparation in a fresh session, the same in the
# visited session — where the strip and the layout already exist —, the timed step)
MEASURES = [
    ("Maximise", "maximise", "maximisation", "maximise_s", prepare_maximise, prepare_maximise,
     time_maximisation),
    ("Strips", "strips", "player step", "player_step_s", build_strip, None, time_player_step),
    ("Embeddings", "embeddings", "layer step", "layer_step_s", compute_embeddings, None,
     time_layer_step),
]
KEYS = [m[3] for m in MEASURES]


def chosen(args):
    return [m for m in MEASURES if args.which in ("all", m[1])]


def repeat(page, res: dict, what: str, key: str, step, args, log) -> None:
    """``args.repeats`` timed steps, with the page's model and view counts after each."""
    for r in range(args.repeats):
        res[key].append(round(step(page, args, r), 3))
        settle(page)
        res["counts"].append({"after": f"{what} {r + 1}", **counts(page)})
        log(f"    {what} {r + 1}: {res[key][-1]:.2f} s  {res['counts'][-1]}")


def empty() -> dict:
    return {**{k: [] for k in KEYS}, "counts": []}


# -- sessions ------------------------------------------------------------------------------
def fresh(browser, url: str, args, log) -> dict:
    """Each timing in its own fresh session, opened on that tab by link."""
    res = empty()
    for _tab, link, what, key, prepare, _, step in chosen(args):
        ctx, page = open_session(browser, f"{url}?tab={link}")
        log(f"    opened ?tab={link}")
        prepare(page, args)
        settle(page)
        res["counts"].append({"after": f"open ?tab={link}, prepared", **counts(page)})
        repeat(page, res, what, key, step, args, log)
        ctx.close()
    return res


def visit_all(page, args, visit: int, log) -> list[dict]:
    """Show every tab in turn, waiting for each to render (and, on the first visit, doing the
    tab's cheap default work); the model counts after each."""
    rows = []
    first = visit == 1
    for name in TABS:
        show_tab(page, name)
        if name == "Inspect":
            if first:
                page.locator(".hs-upload input[type=file]").set_input_files(str(FSDD / CLIP))
            shows(page, "hs-inspect-header", CLIP).wait_for()
        elif name == "Edit & compare":
            shows(page, "hs-compare-header", CLIP).wait_for()
        elif name == "Explain":
            shows(page, "hs-explain-header", CLIP.removesuffix(".wav")).wait_for()
            page.locator(".hs-explain-listen-method select option").first.wait_for(
                state="attached")
        elif name == "Maximise":
            page.locator(".hs-actmax-run button").wait_for(state="visible")
        elif name == "Strips":
            shows(page, "hs-strip-note", CLIP).wait_for()
            if first:
                build_strip(page, args)
        elif name == "Embeddings":
            page.locator(".hs-emb-compute button").wait_for(state="visible")
            if first:
                compute_embeddings(page)
        settle(page, 1500)
        rows.append({"after": f"visit {visit}: {name}", **counts(page)})
        log(f"    {rows[-1]}")
    return rows


def visited(browser, url: str, args, log) -> dict:
    """One session: every tab visited twice, then the timings taken on their tabs in it."""
    ctx, page = open_session(browser, url)
    settle(page)
    res = empty()
    res["counts"] = [{"after": "open /", **counts(page)}]
    res["counts"] += visit_all(page, args, 1, log)
    res["counts"] += visit_all(page, args, 2, log)
    for tab, _link, what, key, _, prepare, step in chosen(args):
        show_tab(page, tab)
        if prepare is not None:
            prepare(page, args)
        repeat(page, res, what, key, step, args, log)
    ctx.close()
    return res


def median(xs):
    return round(statistics.median(xs), 3) if xs else None


def summarise(name: str, res: dict) -> dict:
    return {"session": name, **{k: median(res[k]) for k in KEYS},
            "max_models": max(c["models"] for c in res["counts"]),
            "max_views": max(c["views"] for c in res["counts"])}


def print_table(rows: list[dict], ratios: dict) -> None:
    print(f"{'session':<14s} {'models':>7s} {'views':>6s} {'maximise s':>11s} "
          f"{'player step s':>14s} {'layer step s':>13s}")
    f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        print(f"{r['session']:<14s} {r['max_models']:>7d} {r['max_views']:>6d} "
              f"{f(r['maximise_s']):>11s} {f(r['player_step_s']):>14s} "
              f"{f(r['layer_step_s']):>13s}")
    print(f"{'visited/fresh':<14s} {'':>7s} {'':>6s} {f(ratios['maximise_s']):>11s} "
          f"{f(ratios['player_step_s']):>14s} {f(ratios['layer_step_s']):>13s}"
          "   (target <= 1.50)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--frames", type=int, default=3, help="frames of the strip (K)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20 steps, 1 repeat")
    ap.add_argument("--which", default="all", choices=["all", *(m[1] for m in MEASURES)],
                    help="only this timing (debugging)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "session_growth.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 20, 1
    from load_server import _free_port, start_server, stop_server, tiny_checkpoint
    from playwright.sync_api import sync_playwright

    def log(line: str) -> None:
        print(line, flush=True)

    load = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        ckpt = tiny_checkpoint(Path(tmp), f"fsdd:{FSDD}")
        port = _free_port()
        proc = start_server(ckpt, port, home)
        url = f"http://127.0.0.1:{port}/"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    log("warm-up (compiles; not counted)")
                    warm = argparse.Namespace(**{**vars(args), "repeats": 1, "steps": 5})
                    fresh(browser, url, warm, log)
                    log("fresh sessions (A)")
                    a = fresh(browser, url, args, log)
                    log("one session visiting every tab twice (B)")
                    b = visited(browser, url, args, log)
                    log("fresh sessions again (A')")
                    a2 = fresh(browser, url, args, log)
                finally:
                    browser.close()
        finally:
            stop_server(proc)
    load["after"] = os.getloadavg()
    rows = [summarise("fresh", a), summarise("visited", b), summarise("fresh_after", a2)]
    ratios = {}
    for k in KEYS:
        both = a[k] + a2[k]
        ratios[k] = round(median(b[k]) / median(both), 3) if both and b[k] else None
    print_table(rows, ratios)
    print(f"load average (1, 5, 15 min): before {load['before']}, after {load['after']}; "
          f"{os.cpu_count()} cores")
    result = {"steps": args.steps, "starts": args.starts, "frames": args.frames,
              "repeats": args.repeats, "summary": rows, "ratio_visited_over_fresh": ratios,
              "target_ratio": 1.5, "fresh": a, "visited": b, "fresh_after": a2,
              "loadavg": load,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
