"""Load: N concurrent browser-less sessions against a real ``hearsight serve`` (issue 7).

    python3 benchmarks/load.py [--model CKPT] [--ramp 1,2,5,10,20] [--interactions 5]
                               [--soak-seconds 180] [--soak-sessions 5]

Starts ``python3 -m cli.main serve`` on 127.0.0.1 (a free port; without ``--model`` a randomly
initialised ``ddevis_cnn`` checkpoint whose corpus is ``fsdd:../shared/data/fsdd``, so the
sidebar's corpus picker lists that corpus's test split). For every N of the ramp it opens N
sessions with ``bokeh.client.pull_session``, one thread each. One interaction picks another
item in the sidebar's corpus picker (the bokeh ``Select`` with css class ``hs-item``; choosing
an item loads it at once) and waits until the Inspect header (css class
``hs-inspect-header``) names that item: by then the server has decoded the clip, run the
forward with every intermediate and redrawn the pages. Latency = seconds from setting the value
to the header patch arriving. A level is *held* when every interaction succeeded and p95 <= 1 s.

Then a bounded soak (``--soak-seconds``, at most 300): ``--soak-sessions`` sessions interact in
a loop while the server's resident memory (psutil) is sampled every ``--sample-every`` s.
Prints a table, writes ``benchmarks/results/NAME.json`` and ``NAME_soak.png`` (Pillow;
``--name``, default ``load``). Every loop is bounded in count and time; the server is stopped at the end.

Why the corpus picker and not the upload: Panel >= 1.5 sends a ``FileInput``'s bytes in chunks
over its own messages, so setting the bokeh model's ``value`` from a client never reaches the
server's upload handler. With ``--maximise``, after its picks each session opens the Maximise
tab and runs one short maximisation (the page's defaults: 20 steps × 8 starts), and its times
to the first and the last step are reported next to the level's latencies. Such a session
opens with ``?tab=maximise`` (the page built at connect, then Inspect brought to the front for
the picks): bokeh's Python client cannot read the patch Panel sends for a page built later.
Sessions announce ``DocumentReady`` as a browser does (before it Panel sends no changes).
``--think S`` pauses before each pick (exponential, mean S, as a person looking at the result);
``--arrive-over S`` spreads the sessions' connections over S seconds; ``--procs N`` serves with
``hearsight serve --procs N``; server CPU and memory include the worker processes.
``--client-procs K`` spreads the sessions over K client processes (as users have browsers of
their own; in one process every session's messages queue on one interpreter lock); client
CPU includes them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # run as a script from anywhere
FSDD_DIR = ROOT.parent / "shared" / "data" / "fsdd"

from load_report import maximise_summary, p95_or_none, print_table, timeline, write  # noqa: E402
from load_server import (_cpu_s, _free_port, _rss_mib, memprobe_summary,  # noqa: E402
                         start_server, stop_server, tiny_checkpoint)
MAX_SOAK_S, MAX_LEVEL_SESSIONS = 300.0, 64


def _run_threads(url: str, n: int, *, seed: int, join_s: float, arrive_over: float = 0.0,
                 pool=None, **kwargs) -> list[dict]:
    """``n`` client sessions (seeds ``seed + s``); their result dicts. Session ``s`` connects
    ``s * arrive_over / n`` seconds after the first. Without ``pool`` they are ``n`` threads of
    this process; with a ``ProcessPoolExecutor`` of K workers, session ``s`` runs as a thread
    of worker ``s % K`` (see ``--client-procs``)."""
    from load_client import run_group

    plan = [(seed + s, s * arrive_over / n) for s in range(n)]
    if pool is None:
        return run_group(url, plan, join_s=join_s, **kwargs)
    k = pool._max_workers
    parts = [pool.submit(run_group, url, plan[w::k], join_s=join_s, **kwargs) for w in range(k)]
    outs = [[] for _ in range(k)]
    for w, part in enumerate(parts):
        outs[w] = part.result(timeout=join_s + 60)
    return [outs[s % k][s // k] for s in range(n)]  # back in session order


def client_pool(procs: int):
    """``procs`` client processes, started (and bokeh imported) before any level is timed;
    None for 1 (threads of this process)."""
    if procs <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from load_client import warm_up

    pool = ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(warm_up, [0.5] * procs))  # each sleeps, so every worker takes one
    return pool


def ramp_level(url: str, pid: int, n: int, *, interactions: int, timeout: float,
               seed: int, maximisation: bool = True, think: float = 0.0,
               arrive_over: float = 0.0, pool=None) -> dict:
    """N sessions at once, ``interactions`` each: latency percentiles, errors, held or not,
    and the CPU seconds the server and the clients (this process) spent on the level."""
    if not 1 <= n <= MAX_LEVEL_SESSIONS:
        raise ValueError(f"sessions per level must be 1..{MAX_LEVEL_SESSIONS}, got {n}")
    t0, cpu0, start = time.time(), _cpu_s(pid), time.perf_counter()
    outs = _run_threads(url, n, seed=seed, arrive_over=arrive_over, pool=pool,
                        join_s=120 + arrive_over + (interactions + 1) * (timeout + 4 * think),
                        interactions=interactions, timeout=timeout, maximisation=maximisation,
                        think=think)
    cpu = [round(b - a, 1) for a, b in zip(cpu0, _cpu_s(pid))]
    lats = np.array([x for o in outs for x in o.get("latencies", [])])
    errors = [o["error"] for o in outs if "error" in o]
    connect = [o["connect_s"] for o in outs if "connect_s" in o]
    p50, p95, pmax = (float(np.percentile(lats, q)) if lats.size else float("nan")
                      for q in (50, 95, 100))
    return {"sessions": n, "interactions": int(lats.size), "errors": len(errors),
            "first_error": errors[0] if errors else None, "p50_s": p50, "p95_s": p95,
            "max_s": pmax, "connect_p50_s": float(np.median(connect)) if connect else None,
            "wall_s": round(time.time() - t0, 1), "server_cpu_s": cpu[0], "client_cpu_s": cpu[1],
            "held": not errors and lats.size == n * interactions and p95 <= 1.0,
            # A session's first pick builds its Inspect figures; later picks only patch them.
            "first_pick_p95_s": p95_or_none([o["latencies"][0] for o in outs if o.get("latencies")]),
            "later_picks_p95_s": p95_or_none([x for o in outs for x in o.get("latencies", [])[1:]]),
            "maximise": maximise_summary(outs) if maximisation else None,
            "timeline": timeline(outs, start)}


def soak(url: str, pid: int, *, sessions: int, seconds: float, every: float, timeout: float,
         seed: int, think: float = 0.0) -> dict:
    """``sessions`` sessions looping for ``seconds`` while the server's RSS is sampled (MiB)."""
    t0 = time.time()
    until, outs, samples = t0 + seconds, [], []
    runner = threading.Thread(target=lambda: outs.extend(_run_threads(
        url, sessions, seed=seed, join_s=seconds + timeout + 60, interactions=0,
        timeout=timeout, until=until, think=think)), daemon=True)
    runner.start()
    while time.time() < until:
        samples.append([round(time.time() - t0, 1), _rss_mib(pid)])
        time.sleep(every)
    runner.join(timeout + 90)
    samples.append([round(time.time() - t0, 1), _rss_mib(pid)])
    lats = np.array([x for o in outs for x in o.get("latencies", [])])
    return {"sessions": sessions, "seconds": seconds, "interactions": int(lats.size),
            "p95_s": float(np.percentile(lats, 95)) if lats.size else None,
            "errors": [o["error"] for o in outs if "error" in o], "rss_mib": samples}


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (its corpus must have a test split)")
    p.add_argument("--corpus", default=f"fsdd:{FSDD_DIR}", help="corpus of the tiny checkpoint")
    p.add_argument("--ramp", default="1,2,5,10,20")
    p.add_argument("--interactions", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per interaction")
    p.add_argument("--soak-seconds", type=float, default=180.0)
    p.add_argument("--soak-sessions", type=int, default=5)
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--stop-p95", type=float, default=30.0,
                   help="skip the higher levels once a level's p95 passes this (s)")
    p.add_argument("--no-explain-autostart", action="store_true",
                   help="diagnostic: serve with the Explain page's per-clip computation off")
    p.add_argument("--maximise", action="store_true",
                   help="also run one maximisation per session (see the module docstring)")
    p.add_argument("--think", type=float, default=0.0,
                   help="mean pause (s) before each pick, exponential; 0: back to back")
    p.add_argument("--arrive-over", type=float, default=0.0,
                   help="spread the sessions' connections evenly over this many seconds")
    p.add_argument("--procs", type=int, default=1, help="server processes (serve --procs)")
    p.add_argument("--client-procs", type=int, default=1,
                   help="client processes the sessions are spread over (1: threads of this "
                        "process, whose one interpreter lock then queues every session's "
                        "messages behind the others')")
    p.add_argument("--memprobe", action="store_true",
                   help="the server also logs malloc in-use/free and Python counts every 15 s "
                        "(benchmarks/memprobe), summarised after the soak; with --procs > 1 "
                        "only the parent, which serves nothing (RSS covers every worker)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--name", default="load", help="result files NAME.json, NAME_soak.png")
    args = p.parse_args(argv)
    if not 1 <= args.interactions <= 100 or not 1.0 <= args.timeout <= 600:
        p.error("--interactions must be 1..100 and --timeout 1..600 s")
    if not 0 <= args.think <= 60 or not 0 <= args.arrive_over <= 300 or not 1 <= args.procs <= 16 \
            or not 1 <= args.client_procs <= 16:
        p.error("--think must be 0..60 s, --arrive-over 0..300 s, --procs and --client-procs 1..16")
    args.soak_seconds = min(max(args.soak_seconds, 0.0), MAX_SOAK_S)
    return args


def _measure(args, url: str, pid: int) -> tuple[list, dict | None]:
    """The ramp (stopping early once a level's p95 passes ``--stop-p95``), then the soak."""
    from load_models import register_models

    register_models()
    pool = client_pool(args.client_procs)
    try:
        return _ramp_and_soak(args, url, pid, pool)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _ramp_and_soak(args, url: str, pid: int, pool) -> tuple[list, dict | None]:
    levels = []
    for n in (int(x) for x in args.ramp.split(",")):
        if levels and (levels[-1].get("skipped") or not levels[-1]["p95_s"] <= args.stop_p95):
            print(f"N={n:3d}: skipped (the previous level's p95 passed {args.stop_p95:g} s)")
            levels.append({"sessions": n, "skipped": True})
            continue
        levels.append(ramp_level(url, pid, n, interactions=args.interactions,
                                 timeout=args.timeout, seed=args.seed + 1000 * n,
                                 maximisation=args.maximise, think=args.think,
                                 arrive_over=args.arrive_over, pool=pool))
        r = levels[-1]
        print(f"N={n:3d}: p50 {r['p50_s']:.3f} s, p95 {r['p95_s']:.3f} s, errors {r['errors']}, "
              f"held {r['held']} ({r['wall_s']} s; CPU s server {r['server_cpu_s']}, "
              f"clients {r['client_cpu_s']})", flush=True)
    soaked = None
    if args.soak_seconds > 0:
        soaked = soak(url, pid, sessions=args.soak_sessions, seconds=args.soak_seconds,
                      every=args.sample_every, timeout=args.timeout, seed=args.seed + 99,
                      think=args.think)
    return levels, soaked


def main(argv=None) -> dict:
    """Run the ramp and the soak against a fresh server; print, write and return the results."""
    args = _parse(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_checkpoint(Path(tmp), args.corpus)
        port = _free_port()
        url, t0 = f"http://127.0.0.1:{port}/", time.time()
        probe = Path(tmp) / "memprobe.jsonl" if args.memprobe else None
        server = start_server(model, port, Path(tmp) / "home", memprobe=probe,
                              no_explain=args.no_explain_autostart, procs=args.procs)
        try:
            print(f"server up in {time.time() - t0:.1f} s at {url}", flush=True)
            levels, soaked = _measure(args, url, server.pid)
        finally:
            stop_server(server)
        probed = memprobe_summary(probe) if probe is not None else None
    held = max((r["sessions"] for r in levels if r.get("held")), default=0)
    result = {"url": url, "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
              "interaction": "pick another corpus item (Select .hs-item) -> new Inspect header",
              "levels": levels, "sessions_held_p95_le_1s": held, "soak": soaked,
              "memprobe": probed,
              "explain_autostart": not args.no_explain_autostart,
              "think_s": args.think, "arrive_over_s": args.arrive_over, "procs": args.procs,
              "client_procs": args.client_procs,
              "maximisation": ("one per session after its picks (Maximise tab, Run, defaults)"
                               if args.maximise else "not driven (run with --maximise)")}
    print_table(levels)
    print(f"sessions held with p95 <= 1 s: {held}")
    if probed:
        print("server memory (MiB)      " + "  ".join(f"{k:>9}" for k in probed["first"]))
        for when in ("first", "after_warmup", "last"):
            print(f"  {when:22s} " + "  ".join(f"{v:9.1f}" for v in probed[when].values()))
    write(result, Path(args.out), args.name)
    return result


if __name__ == "__main__":
    main()
