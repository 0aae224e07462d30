"""``hearsight corpus synth | info``: synthesise the embedded corpus, or describe a corpus."""

from __future__ import annotations

import time

from data.dataset import cache_home


def add_parser(sub) -> None:
    p = sub.add_parser("corpus", help="build or describe a corpus")
    csub = p.add_subparsers(dest="corpus_cmd", required=True)
    s = csub.add_parser("synth", help="synthesise the embedded eSpeak NG corpus (cached)")
    s.add_argument("--small", action="store_true", help="the tiny test variant")
    s.add_argument("--seed", type=int, default=0)
    i = csub.add_parser("info", help="counts per split, label and speaker")
    i.add_argument("spec")
    i.add_argument("--json", action="store_true")


def run(args):
    from data.corpora import open_corpus

    if args.corpus_cmd == "synth":
        t0 = time.perf_counter()
        try:
            corpus = open_corpus("synth:small" if args.small else "synth", seed=args.seed)
        except OSError as exc:
            raise OSError(f"cannot write the corpus into the cache folder {cache_home()} "
                          f"({exc.strerror or exc}); set HEARSIGHT_HOME to a writable "
                          "folder") from exc
        print(f"{len(corpus.items)} clips, {len(corpus.labels)} words, "
              f"{len({i.speaker for i in corpus.items})} voices in {time.perf_counter() - t0:.1f} s")
        return None
    summary = open_corpus(args.spec, progress=False).summary()
    if not args.json:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return summary
