"""Build (once) and cache the ``synth`` corpus: eSpeak NG words × voices × takes.

Clips are written as 16-bit wav files to
``cache_dir/corpora/synth-<config hash>/{word}/{voice}_{take}.wav`` beside a
``manifest.json``. The folder is assembled under a temporary name and renamed into place
at the end, so an interrupted build never looks complete.

Determinism: eSpeak NG keeps a little state from one utterance to the next (its pitch
flutter phase is a function-level static that ``espeak_Terminate`` does not reset), so the
same word spoken twice in one process is not bit-identical. The voices are therefore dealt
round-robin to a fixed number of shards (``SynthConfig.shards``, part of the cache key), and
each shard runs in a fresh ``python -m data.synth_corpus`` process that speaks its clips in
a fixed order; all random draws come from ``default_rng((seed, voice index, word index,
take))``. The same config and seed give byte-identical files however the OS schedules the
shards. (Subprocesses rather than ``multiprocessing``: no fork of a parent that may hold
JAX threads, and no re-import of the caller's ``__main__`` in every child.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from data import synth

SYNTH_VERSION = 2  # bump whenever rendering changes: the cache key does not hash the code
# (2: the breathy voices are seeded per utterance; they were seeded by the clock)


@dataclass(frozen=True)
class SynthConfig:
    """What the synth corpus contains (part of the cache key).

    Attributes:
      words: class labels, spoken as written.
      voices: eSpeak NG voice names; each one is a speaker.
      takes: clips per (word, voice), each with fresh random prosody and augmentation.
      sample_rate: Hz of the stored wavs. min_duration_s: shortest clip, seconds.
      pitch, pitch_range, rate: uniform integer ranges (eSpeak units: 0..100, 0..100, wpm).
      gain_db, snr_db: augmentation ranges in dB; max_onset_s: latest word onset, seconds.
      holdout_frac: share of voices held out for each of valid and test.
      shards: worker processes (2 on purpose: fixed, so output never depends on the machine).
    """

    words: tuple[str, ...]
    voices: tuple[str, ...]
    takes: int = 2
    sample_rate: int = 16000
    min_duration_s: float = 1.0
    pitch: tuple[int, int] = (35, 65)
    pitch_range: tuple[int, int] = (30, 70)
    rate: tuple[int, int] = (140, 210)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    snr_db: tuple[float, float] = (15.0, 40.0)
    max_onset_s: float = 0.15
    holdout_frac: float = 0.1
    shards: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> "SynthConfig":
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists → tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def key(self, seed: int) -> str:
        """Hash of the config, the seed, the format version and the synthesiser version."""
        blob = json.dumps({"config": asdict(self), "seed": seed, "version": SYNTH_VERSION,
                           "espeak": _espeak_version()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _espeak_version() -> str:
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        return "unknown"


def config_for(variant: str) -> SynthConfig:
    """``"default"``: 35 words × 48 voices × 2 takes; ``"large"``: the same words and voices
    (so the same held-out voices) × 4 takes; ``"small"``: 4 words × 6 voices × 1."""
    if variant in ("default", "large"):
        return SynthConfig(words=synth.SPEECH_COMMANDS_WORDS, voices=synth.corpus_voices(48),
                           takes=4 if variant == "large" else 2)
    if variant == "small":
        return SynthConfig(words=("yes", "no", "up", "down"), voices=synth.corpus_voices(6),
                           takes=1)
    raise ValueError(f"unknown synth variant {variant!r}; use 'synth', 'synth:large' or 'synth:small'")


def voice_splits(voices: tuple[str, ...], *, seed: int, holdout_frac: float) -> dict[str, str]:
    """Voice → ``"train"|"valid"|"test"``: whole voices held out, chosen by a stable hash.

    ``max(1, round(holdout_frac * n))`` voices each for test and valid when ``n >= 3``.
    """
    order = sorted(voices, key=lambda v: hashlib.sha256(f"{seed}|{v}".encode()).hexdigest())
    k = max(1, round(holdout_frac * len(voices))) if len(voices) >= 3 else 0
    return {v: ("test" if i < k else "valid" if i < 2 * k else "train")
            for i, v in enumerate(order)}


def render_clip(cfg: SynthConfig, *, seed: int, vi: int, wi: int, take: int,
                root: str) -> dict:
    """Speak word ``wi`` with voice ``vi``, augment, write the wav; return its manifest row."""
    import soundfile as sf

    from data import espeak

    voice, word = cfg.voices[vi], cfg.words[wi]
    rng = np.random.default_rng((seed, vi, wi, take))
    pitch, prange, wpm = (int(rng.integers(lo, hi + 1))
                          for lo, hi in (cfg.pitch, cfg.pitch_range, cfg.rate))
    raw, native = espeak.speak(word, voice=voice, pitch=pitch, pitch_range=prange, rate=wpm)
    speech = synth.resample(synth.trim_silence(raw.astype(np.float32) / 32768.0),
                            orig_rate=native, rate=cfg.sample_rate)
    clip = synth.augment(speech, rng=rng, rate=cfg.sample_rate,
                         min_duration_s=cfg.min_duration_s, max_onset_s=cfg.max_onset_s,
                         gain_db=cfg.gain_db, snr_db=cfg.snr_db)
    rel = f"{word}/{voice}_{take}.wav"
    os.makedirs(os.path.join(root, word), exist_ok=True)
    sf.write(os.path.join(root, rel), synth.to_int16(clip), cfg.sample_rate,
             subtype="PCM_16", format="WAV")
    return {"id": f"synth/{word}/{voice}_{take}", "path": rel, "label": word,
            "speaker": voice, "pitch": pitch, "pitch_range": prange, "rate": wpm}


def _worker_main() -> None:
    """Subprocess entry: a shard job as JSON on stdin, one JSON row per clip on stdout."""
    job = json.loads(sys.stdin.read())
    cfg = SynthConfig.from_dict(job["config"])
    for vi in job["voices"]:
        for wi in range(len(cfg.words)):
            for take in range(cfg.takes):
                row = render_clip(cfg, seed=job["seed"], vi=vi, wi=wi, take=take,
                                  root=job["root"])
                print(json.dumps(row), flush=True)


def _worker_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])  # so `data` imports uninstalled, too
    paths = [root] + [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _run_shard(job: dict, on_row) -> list[dict]:
    """Render one shard in a fresh ``python -m data.synth_corpus`` process."""
    with tempfile.TemporaryFile(mode="w+") as err, subprocess.Popen(
            [sys.executable, "-m", "data.synth_corpus"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, text=True, env=_worker_env()) as proc:
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        rows = []
        for line in proc.stdout:
            rows.append(json.loads(line))
            on_row()
        if proc.wait() != 0:
            err.seek(0)
            raise RuntimeError(f"synth worker failed (exit {proc.returncode}): "
                               f"{err.read()[-2000:]}")
    return rows


def _render_all(cfg: SynthConfig, seed: int, root: Path, *, progress: bool) -> list[dict]:
    shards = [list(range(s, len(cfg.voices), cfg.shards)) for s in range(cfg.shards)]
    jobs = [{"config": asdict(cfg), "seed": seed, "voices": vis, "root": str(root)}
            for vis in shards if vis]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(cfg.voices) * len(cfg.words) * cfg.takes, desc="synthesising",
                   unit="clip", leave=False)
    lock = threading.Lock()

    def tick() -> None:
        if bar is not None:
            with lock:
                bar.update(1)

    with ThreadPoolExecutor(max_workers=len(jobs)) as ex:
        results = list(ex.map(lambda job: _run_shard(job, tick), jobs))
    if bar is not None:
        bar.close()
    by_id = {row["id"]: row for rows in results for row in rows}
    return [by_id[f"synth/{w}/{v}_{t}"] for v in cfg.voices for w in cfg.words
            for t in range(cfg.takes)]


def build(cfg: SynthConfig, *, seed: int, cache_dir: Path, progress: bool) -> Path:
    """Synthesise the corpus into ``cache_dir/corpora/synth-<key>`` unless already there.

    Returns the folder; its ``manifest.json`` lists the items with relative paths.
    """
    final = Path(cache_dir) / "corpora" / f"synth-{cfg.key(seed)}"
    if (final / "manifest.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        rows = _render_all(cfg, seed, tmp, progress=progress)
        splits = voice_splits(cfg.voices, seed=seed, holdout_frac=cfg.holdout_frac)
        for row in rows:
            row["split"] = splits[row["speaker"]]
        manifest = {"version": SYNTH_VERSION, "seed": seed, "config": asdict(cfg),
                    "key": cfg.key(seed), "items": rows}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "manifest.json").is_file():  # lost a race only if it is complete
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(folder: Path) -> dict:
    """The manifest of a built synth corpus, with absolute item paths."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    if manifest.get("version") != SYNTH_VERSION:
        raise ValueError(f"{folder} holds synth corpus version {manifest.get('version')}, "
                         f"expected {SYNTH_VERSION}; delete the folder to rebuild it")
    for row in manifest["items"]:
        row["path"] = str((Path(folder) / row["path"]).resolve())
    return manifest


if __name__ == "__main__":
    _worker_main()
