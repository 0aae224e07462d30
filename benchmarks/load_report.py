"""Summaries and output of ``benchmarks/load.py``: a level's timeline, percentiles and
maximisation medians, the soak's RSS summary, the printed table and the result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from load_server import soak_png


def timeline(outs: list[dict], start: float) -> dict:
    """When (s after the level began) each session connected, picked (with the pick's
    latency) and started its maximisation (with its seconds to the last step): to see
    whether slow picks come with the arrivals or with the maximisations."""
    at = lambda t: round(t - start, 3)
    picks = sorted((at(t), round(lat, 3)) for o in outs
                   for t, lat in zip(o.get("pick_at", []), o.get("latencies", [])))
    return {"connect": sorted(at(o["connect_at"]) for o in outs if "connect_at" in o),
            "picks": [list(p) for p in picks],
            "maximise": sorted([at(o["maximise_at"]), round(o["maximise"]["done_s"], 3)]
                               for o in outs if "maximise" in o)}


def p95_or_none(values: list) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def maximise_summary(outs: list[dict]) -> dict:
    """Medians over sessions of the maximisation's time to its first and its last step."""
    runs = [o["maximise"] for o in outs if "maximise" in o]
    med = lambda k: float(np.median([r[k] for r in runs])) if runs else None
    return {"runs": len(runs), "first_step_p50_s": med("first_step_s"), "done_p50_s": med("done_s")}


def rss_summary(samples: list, warmup_fraction: float = 0.25) -> dict:
    """RSS at the start, the mean just after warm-up, the mean of the last quarter, the max."""
    mib = np.array([m for _, m in samples], dtype=float)
    k = max(1, int(len(mib) * warmup_fraction))
    return {"start": float(mib[0]), "after_warmup": float(mib[k:2 * k].mean() if len(mib) > k
                                                          else mib[-1]),
            "end": float(mib[-k:].mean()), "max": float(mib.max())}


def print_table(levels: list[dict]) -> None:
    print(f"{'N':>4} {'done':>5} {'err':>4} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
          f"{'1st p95':>7} {'rest p95':>8} {'conn s':>7} {'held':>5} "
          f"{'actmax 1st/last step s':>23}")
    for r in levels:
        if r.get("skipped"):
            print(f"{r['sessions']:4d}  skipped")
            continue
        print(f"{r['sessions']:4d} {r['interactions']:5d} {r['errors']:4d} {r['p50_s']:7.3f} "
              f"{r['p95_s']:7.3f} {r['max_s']:7.3f} {_num(r['first_pick_p95_s']):7.3f} "
              f"{_num(r['later_picks_p95_s']):8.3f} {r['connect_p50_s'] or float('nan'):7.2f} "
              f"{str(r['held']):>5} {_max_cell(r.get('maximise')):>23}"
              + (f"  ({r['first_error']})" if r["first_error"] else ""))


def _num(x) -> float:
    return float("nan") if x is None else x


def _max_cell(m: dict | None) -> str:
    if not m or not m["runs"]:
        return "-"
    return f"{m['first_step_p50_s']:.2f} / {m['done_p50_s']:.2f} ({m['runs']})"


def write(result: dict, out: Path, name: str = "load") -> None:
    """``NAME.json`` and, after a soak, ``NAME_soak.png`` (with the RSS summary printed)."""
    out.mkdir(parents=True, exist_ok=True)
    soaked = result["soak"]
    if soaked and soaked["rss_mib"]:
        s = result["soak_rss_mib"] = rss_summary(soaked["rss_mib"])
        print(f"soak: {soaked['sessions']} sessions, {soaked['interactions']} interactions in "
              f"{soaked['seconds']:.0f} s, errors {len(soaked['errors'])}; RSS {s['start']:.0f} MiB "
              f"start, {s['after_warmup']:.0f} after warm-up, {s['end']:.0f} at the end, "
              f"max {s['max']:.0f}")
        soak_png(soaked["rss_mib"], out / f"{name}_soak.png", title=(
            f"hearsight server RSS (MiB), {soaked['sessions']} sessions looping, "
            f"{soaked['interactions']} interactions"))
        print(f"wrote {out / f'{name}_soak.png'}")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / f'{name}.json'}")
