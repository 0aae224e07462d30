"""Corpus layouts and split rules, on tiny fixtures and on the shared FSDD copy."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.corpora import Corpus, Item, open_corpus
from data.corpus_layouts import background_noise_paths, folder_speaker, fsdd_split, hash_split

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd"


def _wav(path: Path, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if path.suffix == ".wav" else None  # ogg needs its own (Vorbis)
    sf.write(str(path), np.zeros(80, np.float32), rate, subtype=subtype)
    return path


@pytest.fixture
def fsdd_dir(tmp_path):
    for digit in ("0", "1"):
        for speaker in ("ann", "bob"):
            for take in (3, 7, 20):
                _wav(tmp_path / f"{digit}_{speaker}_{take}.wav")
    (tmp_path / "README.md").write_text("not audio, ignored")
    return tmp_path


def test_fsdd_default_split_by_take(fsdd_dir):
    c = open_corpus(f"fsdd:{fsdd_dir}", progress=False)
    assert isinstance(c, Corpus) and c.name == "fsdd" and c.sample_rate == 8000
    assert c.labels == ("0", "1") and len(c.items) == 12
    by_id = {it.id: it for it in c.items}
    assert by_id["fsdd/1_bob_3"] == Item(id="fsdd/1_bob_3", path=str(fsdd_dir / "1_bob_3.wav"),
                                         label="1", speaker="bob", split="test")
    assert by_id["fsdd/0_ann_7"].split == "valid"
    assert by_id["fsdd/0_ann_20"].split == "train"
    assert [len(c.split(s)) for s in ("train", "valid", "test", "all")] == [4, 4, 4, 12]
    assert [fsdd_split(t) for t in (0, 4, 5, 9, 10, 49)] == ["test", "test", "valid", "valid",
                                                              "train", "train"]


def test_fsdd_leave_one_speaker_out(fsdd_dir):
    c = open_corpus(f"fsdd:{fsdd_dir}", split_by="speaker", holdout_speaker="ann")
    got = {it.id: it.split for it in c.items}
    assert {got[f"fsdd/{d}_ann_{t}"] for d in "01" for t in (3, 7, 20)} == {"test"}
    assert got["fsdd/0_bob_3"] == "valid"
    assert got["fsdd/0_bob_7"] == "train" and got["fsdd/1_bob_20"] == "train"


def test_fsdd_rejects_misnamed_wav(fsdd_dir):
    _wav(fsdd_dir / "0_ann.wav")
    with pytest.raises(ValueError, match=r"0_ann\.wav.*\{digit\}_\{speaker\}_\{take\}"):
        open_corpus(f"fsdd:{fsdd_dir}")


@pytest.mark.parametrize("spec, message", [
    ("mnist:/tmp", "unknown corpus kind 'mnist'"),
    ("fsdd:", "needs a path"),
    ("fsdd:/no/such/folder", "does not exist"),
    ("", "non-empty"),
    ("synth:huge", "unknown synth variant"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        open_corpus(spec, progress=False)


def test_empty_folder_and_bad_split_options(tmp_path, fsdd_dir):
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no audio files"):
        open_corpus(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(ValueError, match="split_by"):
        open_corpus(f"fsdd:{fsdd_dir}", split_by="random")
    with pytest.raises(ValueError, match="go together"):
        open_corpus(f"fsdd:{fsdd_dir}", holdout_speaker="ann")
    with pytest.raises(ValueError, match=r"'zed' is not in this corpus.*'ann', 'bob'"):
        open_corpus(f"fsdd:{fsdd_dir}", split_by="speaker", holdout_speaker="zed")
    with pytest.raises(ValueError, match="split must be one of"):
        open_corpus(f"fsdd:{fsdd_dir}").split("training")


@pytest.fixture
def speech_commands_dir(tmp_path):
    for rel in ("yes/aa11_nohash_0.wav", "yes/aa11_nohash_1.wav", "yes/bb22_nohash_0.wav",
                "no/cc33_nohash_0.wav", "no/bb22_nohash_1.wav",
                "_background_noise_/white_noise.wav", "_background_noise_/pink_noise.wav"):
        _wav(tmp_path / rel, rate=16000)
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\nno/bb22_nohash_1.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/cc33_nohash_0.wav\nmaybe/gone_nohash_0.wav\n")
    return tmp_path


def test_speech_commands_lists_and_noise(speech_commands_dir):
    c = open_corpus(f"speech-commands:{speech_commands_dir}")
    got = {it.id: (it.label, it.speaker, it.split) for it in c.items}
    assert got == {
        "speech-commands/yes/aa11_nohash_0": ("yes", "aa11", "train"),
        "speech-commands/yes/aa11_nohash_1": ("yes", "aa11", "train"),
        "speech-commands/yes/bb22_nohash_0": ("yes", "bb22", "valid"),
        "speech-commands/no/bb22_nohash_1": ("no", "bb22", "valid"),
        "speech-commands/no/cc33_nohash_0": ("no", "cc33", "test"),
    }
    assert c.labels == ("no", "yes") and c.sample_rate == 16000
    noise = background_noise_paths(speech_commands_dir)
    assert [Path(p).name for p in noise] == ["pink_noise.wav", "white_noise.wav"]
    assert all(Path(p).is_absolute() for p in noise)


def test_speech_commands_leave_one_speaker_out(speech_commands_dir):
    c = open_corpus(f"speech-commands:{speech_commands_dir}", split_by="speaker",
                    holdout_speaker="bb22")
    got = {it.id.split("/", 2)[2]: it.split for it in c.items}
    assert got == {"aa11_nohash_0": "train", "aa11_nohash_1": "train", "bb22_nohash_0": "test",
                   "bb22_nohash_1": "test", "cc33_nohash_0": "valid"}


def test_speech_commands_layout_errors(speech_commands_dir):
    _wav(speech_commands_dir / "yes" / "oddname.wav")
    with pytest.raises(ValueError, match=r"yes/oddname\.wav.*_nohash_"):
        open_corpus(f"speech-commands:{speech_commands_dir}")
    (speech_commands_dir / "testing_list.txt").unlink()
    with pytest.raises(ValueError, match="testing_list.txt"):
        open_corpus(f"speech-commands:{speech_commands_dir}")


def test_folder_speakers_and_speaker_aware_split(tmp_path):
    names = [f"{lab}/{spk}_nohash_{i}.wav" for lab in ("cat", "dog") for spk in
             ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8") for i in range(2)]
    names += ["dog/dog_tom_3.flac", "cat/deep/recording.ogg"]
    for rel in names:
        _wav(tmp_path / rel)
    c = open_corpus(f"folder:{tmp_path}", seed=3)
    assert c.labels == ("cat", "dog") and len(c.items) == len(names) and c.sample_rate is None
    splits_of = defaultdict(set)
    for it in c.items:
        splits_of[it.speaker].add(it.split)
    assert all(len(s) == 1 for spk, s in splits_of.items() if spk)
    by_id = {it.id: it for it in c.items}
    assert by_id["folder/dog/dog_tom_3.flac"].speaker == "tom"
    assert by_id["folder/cat/deep/recording.ogg"].speaker == ""
    # independent recomputation of the documented rule: sha256("seed|speaker:NAME")
    for it in c.items:
        key = f"speaker:{it.speaker}" if it.speaker else f"file:{it.id[len('folder/'):]}"
        bucket = int(hashlib.sha256(f"3|{key}".encode()).hexdigest()[:8], 16) % 100
        assert it.split == ("train" if bucket < 80 else "valid" if bucket < 90 else "test")


def test_folder_layout_rules(tmp_path):
    assert folder_speaker("abc_nohash_2", "yes") == "abc"
    assert folder_speaker("yes_jo_12", "yes") == "jo"
    assert folder_speaker("no_jo_12", "yes") == ""
    fractions = np.bincount([("train", "valid", "test").index(hash_split(f"k{i}"))
                             for i in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.025)
    _wav(tmp_path / "yes" / "a.wav")
    _wav(tmp_path / "loose.wav")
    with pytest.raises(ValueError, match=r"'loose\.wav'.*one sub-folder per label"):
        open_corpus(f"folder:{tmp_path}")


@pytest.mark.skipif(not FSDD.is_dir(), reason="shared FSDD copy not present")
def test_real_fsdd_counts():
    c = open_corpus(f"fsdd:{FSDD}")
    s = c.summary()
    json.dumps(s)  # JSON-friendly
    assert s["n_items"] == 2500 and c.labels == tuple(str(d) for d in range(10))
    assert s["speakers"] == {k: 500 for k in ("george", "jackson", "lucas", "nicolas",
                                              "yweweler")}
    assert s["splits"] == {"train": 2000, "valid": 250, "test": 250}
    assert s["per_label"]["7"] == {"test": 25, "train": 200, "valid": 25}
    loso = open_corpus(f"fsdd:{FSDD}", split_by="speaker", holdout_speaker="lucas")
    assert {it.speaker for it in loso.split("test")} == {"lucas"}
    assert loso.summary()["splits"] == {"train": 1800, "valid": 200, "test": 500}


def _tone_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(800, 0.1, np.float32), 8000)


def test_an_unreadable_folder_in_a_folder_corpus_gets_a_message(tmp_path, monkeypatch):
    import os

    _tone_file(tmp_path / "yes" / "a.wav")
    (tmp_path / "yes" / "locked").mkdir()
    real = os.scandir

    def scandir(path="."):  # root reads everything, so deny one folder as /proc/1/cwd is
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ValueError, match=r"cannot read .*locked in the folder corpus .* "
                                         r"\(Permission denied\); point folder: at a folder"):
        open_corpus(f"folder:{tmp_path}")


def test_a_folder_corpus_of_the_whole_disk_stops_early(tmp_path, monkeypatch):
    import data.corpus_layouts as layouts

    for i in range(6):
        _tone_file(tmp_path / "yes" / f"{i}.wav")
    monkeypatch.setattr(layouts, "MAX_SCANNED", 5)
    with pytest.raises(ValueError, match="holds more than 5 entries"):
        open_corpus(f"folder:{tmp_path}")
    monkeypatch.setattr(layouts, "MAX_SCANNED", 6)
    assert len(open_corpus(f"folder:{tmp_path}").items) == 6
