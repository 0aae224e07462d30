"""Benchmark: the Embeddings page at 10M points in a real browser, beside a plain HoloViews +
datashader Panel app on the same points, in the same run.

A ``hearsight project``-style Parquet of ``--n`` frame-level points (6 layers, 10 labels; the
generator of ``benchmarks/embeddings_sessions.py``) is served two ways:

- hearsight: ``hearsight serve --model TINY --projection FILE`` (a randomly initialised
  ``ddevis_cnn``; nothing is trained); the page opens by link on ``?tab=embeddings`` and draws the
  precomputed layout without a click;
- the peer: ``panel serve`` of a small app — the Parquet read once per process
  (``pn.state.as_cached``), ``hv.Points`` of the chosen layer, ``datashade`` with
  ``count_cat("label")`` at 800×800, a Layer slider driving a ``DynamicMap``: what a user of
  HoloViews would write.

Headless Chromium (playwright, Debian's ``/usr/bin/chromium``; never ``playwright install``)
opens a first and a second session of each and times, from ``goto`` until the first cloud image
is in the browser's Bokeh document; then ``--moves`` layer changes (the Bokeh slider titled
"Layer" set from the page, as a drag ends) until the image differs. Server RSS after each step.
Medians; ``os.getloadavg()`` before and after.

Run from the repository root: ``python3 benchmarks/embeddings_browser.py [--n 10000000]``;
prints a table and writes ``benchmarks/results/embeddings_browser.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]

# A checksum per non-empty "image" column of the page's Bokeh document (sampled pixels).
IMAGES_JS = """() => {
  const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  if (!doc) return [];
  const out = [];
  for (const m of doc._all_models.values()) {
    const img = m.data && m.data.image;
    if (!img || !img.length) continue;
    let a = img[0];
    if (Array.isArray(a) && Array.isArray(a[0])) a = a.flat();
    const arr = a.array || a;
    if (!arr || !arr.length) continue;
    let s = 0; const step = Math.max(1, Math.floor(arr.length / 20000));
    for (let i = 0; i < arr.length; i += step) s = (s * 31 + (arr[i] | 0)) % 1000000007;
    out.push(s);
  }
  return out;
}"""

SET_LAYER_JS = """(v) => {
  for (const m of Bokeh.documents[0]._all_models.values())
    if (m.title === "Layer" && "value" in m && "start" in m) { const t = Date.now(); m.value = v; return t; }
  return false;
}"""
SEEN_JS = "() => [(" + IMAGES_JS + ")(), Date.now()]"  # the image checksums and the time

PEER_APP = '''
import datashader as ds
import holoviews as hv
import pandas as pd
import panel as pn
from holoviews.operation.datashader import datashade

hv.extension("bokeh")
PATH = {path!r}
df = pn.state.as_cached("points", lambda: pd.read_parquet(PATH))
layers = sorted(c[2:] for c in df.columns if c.startswith("x_"))
slider = pn.widgets.IntSlider(name="Layer", start=0, end=len(layers) - 1, value=0)


def points(k):
    name = layers[k]
    return hv.Points(df, [f"x_{{name}}", f"y_{{name}}"], ["label"])


shaded = datashade(hv.DynamicMap(pn.bind(points, slider)), aggregator=ds.count_cat("label"),
                   width=800, height=800).opts(width=800, height=800)
pn.Column(slider, shaded).servable()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_up(url: str, proc, timeout: float = 600.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def tiny_checkpoint(path: Path) -> Path:
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    params = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=10, input_shape=params.shape, seed=0)
    model.eval()
    meta = {"arch": "ddevis_cnn", "arch_kwargs": {"n_classes": 10,
                                                  "input_shape": list(params.shape)},
            "labels": [str(d) for d in range(10)], "features": params.to_dict(),
            "corpus": "synth:small", "split": {}, "metrics": {"note": "untrained"}}
    return save_checkpoint(path, model, meta)


def _wait_image(page, before=None, timeout: float = 180.0, *, seen: list | None = None) -> float:
    """Seconds until the document holds a cloud image (different from ``before``); the
    browser's ``Date.now()`` then is appended to ``seen``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        sums, now = page.evaluate(SEEN_JS)
        if sums and any(sums) and (before is None or sums != before):
            if seen is not None:
                seen.append(now / 1000)
            return time.perf_counter() - t0
        page.wait_for_timeout(20)
    raise TimeoutError("no cloud image")


PARTS = ("to_server", "lock_wait", "render", "to_event_loop", "to_browser")


def breakdown(frame_log: Path, sets: list, seen: list) -> dict:
    """Median seconds of each part of a layer change, from the server's frame log
    (``HEARSIGHT_FRAME_LOG``) and the browser's times of the slider set and the image seen:
    slider set → render called (websocket, Panel's callback queue) → its lock → frame drawn →
    image set on the event loop → image in the browser's document (serialisation, websocket,
    BokehJS decoding; polled every ~20 ms)."""
    if not frame_log.is_file():
        return {}
    entries = [json.loads(line) for line in frame_log.read_text().splitlines() if line]
    parts = {k: [] for k in PARTS}
    for t_set, t_seen in zip(sets, seen):
        mine = [e for e in entries if e.get("render_called", 0) >= t_set - 0.005
                and e["applied"] <= t_seen + 0.005]
        if not mine:
            continue
        e = mine[-1]  # the frame the browser saw
        for k, v in zip(PARTS, (e["render_called"] - t_set, e["render_locked"] -
                                e["render_called"], e["rendered"] - e["render_locked"],
                                e["applied"] - e["rendered"], t_seen - e["applied"])):
            parts[k].append(v)
    return {k: round(statistics.median(v), 3) for k, v in parts.items() if v}


def measure(browser, name: str, url: str, pid: int, moves: int,
            frame_log: Path | None = None) -> list[dict]:
    rows, pages = [], []
    for session in (1, 2):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        pages.append(page)  # the first session stays open while the second one opens
        t0 = time.perf_counter()
        page.goto(url, timeout=180_000)
        _wait_image(page)
        first = time.perf_counter() - t0  # from goto: the page, its session, the first image
        page.wait_for_timeout(500)
        times, sets, seen = [], [], []
        for k in range(1, moves + 1):
            before = page.evaluate(IMAGES_JS)
            t = time.perf_counter()
            t_set = page.evaluate(SET_LAYER_JS, float(k % 6))
            assert t_set, "no Layer slider"
            sets.append(t_set / 1000)
            _wait_image(page, before, seen=seen)
            times.append(time.perf_counter() - t)
            page.wait_for_timeout(300)
        rows.append({"app": name, "session": session, "first_image_s": round(first, 3),
                     "layer_change_s": [round(x, 3) for x in times],
                     "layer_change_median_s": round(statistics.median(times), 3),
                     "server_rss_mb": round(_rss_mb(pid), 1)})
        if frame_log is not None:
            rows[-1]["layer_change_parts_s"] = breakdown(frame_log, sets, seen)
            print(f"{'':>10s} parts of a layer change (median s): "
                  f"{rows[-1]['layer_change_parts_s']}", flush=True)
        print(f"{name:>10s} session {session}: first image {first:.2f} s, layer change median "
              f"{statistics.median(times):.3f} s, server RSS {_rss_mb(pid):.0f} MB", flush=True)
    for page in pages:
        page.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--moves", type=int, default=5)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "embeddings_browser.json")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from embeddings_sessions import write_projection

    load_before = os.getloadavg()
    procs, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        write_projection(tmp / "layout.parquet", args.n)
        print(f"wrote {args.n:,} points in {time.perf_counter() - t0:.1f} s", flush=True)
        ckpt = tiny_checkpoint(tmp / "tiny")
        (tmp / "peer.py").write_text(PEER_APP.format(path=str(tmp / "layout.parquet")))
        env = {**os.environ, "HEARSIGHT_HOME": str(tmp / "home"), "JAX_PLATFORMS": "cpu",
               "PYTHONPATH": str(ROOT)}
        try:
            for name in ("hearsight", "holoviews"):
                port = _free_port()
                if name == "hearsight":
                    cmd = [sys.executable, "-m", "cli.main", "serve", "--model", str(ckpt),
                           "--projection", str(tmp / "layout.parquet"), "--port", str(port)]
                    url = f"http://127.0.0.1:{port}/?tab=embeddings"
                    frame_log = tmp / "frames.jsonl"
                    env["HEARSIGHT_FRAME_LOG"] = str(frame_log)
                else:
                    frame_log = None
                    env.pop("HEARSIGHT_FRAME_LOG", None)
                    cmd = [sys.executable, "-m", "panel", "serve", str(tmp / "peer.py"),
                           "--port", str(port), "--address", "127.0.0.1",
                           "--allow-websocket-origin", f"127.0.0.1:{port}"]
                    url = f"http://127.0.0.1:{port}/peer"
                log = open(tmp / f"{name}.log", "wb")
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
                procs.append(proc)
                _wait_up(f"http://127.0.0.1:{port}/", proc)
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                    try:
                        rows += measure(browser, name, url, proc.pid, args.moves, frame_log)
                    finally:
                        browser.close()
                proc.terminate()
                proc.wait(30)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
    by = {(r["app"], r["session"]): r for r in rows}
    ratios = {f"session{s}_{k}": round(by[("holoviews", s)][k] / by[("hearsight", s)][k], 2)
              for s in (1, 2) for k in ("first_image_s", "layer_change_median_s")}
    print(f"{'app':>10s} {'session':>7s} {'first image s':>13s} {'layer change s':>14s} "
          f"{'server RSS MB':>13s}")
    for r in rows:
        print(f"{r['app']:>10s} {r['session']:>7d} {r['first_image_s']:>13.2f} "
              f"{r['layer_change_median_s']:>14.3f} {r['server_rss_mb']:>13.0f}")
    print("peer / hearsight:", ratios)
    result = {"n": args.n, "moves": args.moves, "rows": rows, "peer_over_hearsight": ratios,
              "targets": {"first_image_s": 10, "second_session_s": 3, "layer_change_s": 0.3},
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
