"""``hearsight experiment accuracy``: zero-shot top-1 on real recordings, per speaker.

A tiny soomro_cnn over the 35 synth words whose logits are a constant vote for "one" gets a
known score on a handful of FSDD files: every "1" clip right, every other clip wrong.
"""

import json

import jax.numpy as jnp
import pytest

from cli.main import main
from data.features import soomro_logmel
from data.synth import SPEECH_COMMANDS_WORDS
from experiments.accuracy import label_map
from models.checkpoint import save_checkpoint
from models.registry import build_model

# (digit, speaker, take): speaker george has two "1"s and one "2"; jackson one "1", two "2"s.
FILES = [(1, "george", 0), (1, "george", 1), (2, "george", 0),
         (1, "jackson", 0), (2, "jackson", 0), (2, "jackson", 1)]


@pytest.fixture()
def always_one(tmp_path):
    """A checkpoint that predicts "one" for every input (zero kernel, one-hot bias)."""
    params, labels = soomro_logmel(), list(SPEECH_COMMANDS_WORDS)
    model = build_model("soomro_cnn", n_classes=len(labels), input_shape=params.shape, seed=0)
    model.out.kernel.value = jnp.zeros_like(model.out.kernel.value)
    model.out.bias.value = jnp.zeros(len(labels)).at[labels.index("one")].set(5.0)
    model.eval()
    meta = {"arch": "soomro_cnn",
            "arch_kwargs": {"n_classes": len(labels), "input_shape": list(params.shape)},
            "labels": labels, "features": params.to_dict(), "corpus": "synth",
            "split": {}, "metrics": {"note": "constant"}}
    return save_checkpoint(tmp_path / "always-one", model, meta)


@pytest.fixture()
def few_fsdd(tmp_path, fsdd_dir):
    """Six FSDD recordings linked into a folder of their own (never copied into the repo)."""
    folder = tmp_path / "fsdd"
    folder.mkdir()
    for digit, speaker, take in FILES:
        name = f"{digit}_{speaker}_{take}.wav"
        (folder / name).symlink_to(fsdd_dir / name)
    return folder


def test_accuracy_writes_overall_and_per_speaker_top1(always_one, few_fsdd, tmp_path, capsys):
    out = tmp_path / "acc.json"
    code = main(["experiment", "accuracy", "--model", str(always_one), "--real",
                 f"fsdd:{few_fsdd}", "--synth", "none", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(out.read_text())
    real = result["real"]
    assert real["n"] == 6 and real["top1"] == pytest.approx(3 / 6)
    assert real["per_speaker"]["george"] == {"top1": pytest.approx(2 / 3), "n": 3}
    assert real["per_speaker"]["jackson"] == {"top1": pytest.approx(1 / 3), "n": 3}
    assert real["per_label"]["1"]["top1"] == 1.0 and real["per_label"]["2"]["top1"] == 0.0
    assert result["n_classes"] == 35 and "synth_heldout" not in result
    assert json.loads(capsys.readouterr().out)["real"]["top1"] == pytest.approx(0.5)


def test_digits_map_to_their_words_among_all_classes():
    labels = list(SPEECH_COMMANDS_WORDS)
    mapping = label_map(["0", "3", "9"], labels)
    assert mapping == {"0": labels.index("zero"), "3": labels.index("three"),
                       "9": labels.index("nine")}
    assert label_map(["yes"], labels) == {"yes": labels.index("yes")}
    with pytest.raises(ValueError, match=r"\['hello'\] are not classes"):
        label_map(["hello", "3"], labels)
