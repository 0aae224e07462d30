"""Worked examples of "your own model" for hearsight, all built here with random weights.

Run ``python3 examples/own_model.py OUT`` to write, offline:

- ``OUT/hf-wav2vec2/``: a tiny Hugging Face ``Wav2Vec2ForSequenceClassification`` folder
  (``save_pretrained``; open it with ``--model hf:OUT/hf-wav2vec2``);
- ``OUT/small_cnn.onnx`` and its spec ``OUT/small_cnn.onnx.json`` (``--model
  onnx:OUT/small_cnn.onnx``).

The PyTorch factory is this file itself: with ``examples/`` on ``PYTHONPATH``,
``--model torch:own_model:small_cnn`` builds :class:`SmallCNN` and declares its spec.
Swap in your own trained weights (``load_state_dict``) and labels to look inside your model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

LABELS = ["yes", "no", "up", "down"]
SAMPLE_RATE = 16000


class SmallCNN(torch.nn.Module):
    """A raw-waveform keyword spotter: two strided 1-d convolutions, mean over time, linear."""

    def __init__(self, n_classes: int = len(LABELS)):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, 16, kernel_size=80, stride=16)
        self.conv2 = torch.nn.Conv1d(16, 32, kernel_size=3, stride=2)
        self.head = torch.nn.Linear(32, n_classes)

    def forward(self, wave):  # (batch, samples) in [-1, 1]
        h = torch.relu(self.conv1(wave[:, None, :]))
        h = torch.relu(self.conv2(h))
        return self.head(h.mean(dim=-1))


SPEC = {"input": "waveform", "sample_rate": SAMPLE_RATE, "n_samples": SAMPLE_RATE,
        "labels": LABELS,
        "layers": {"conv1": "conv1", "conv2": "conv2",
                   "pooled": {"module": "head", "kind": "vector", "capture": "input"}}}


def small_cnn():
    """``torch:own_model:small_cnn``: the module and its spec (load your weights here)."""
    torch.manual_seed(0)
    return SmallCNN().eval(), dict(SPEC)


def write_hf(folder: Path) -> Path:
    """A tiny random wav2vec2 audio classifier (2 transformer layers) in ``folder``."""
    import transformers as tf

    torch.manual_seed(0)
    config = tf.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 2), conv_kernel=(10, 4, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={v: i for i, v in enumerate(LABELS)})
    tf.AutoModelForAudioClassification.from_config(config).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True).save_pretrained(folder)
    return folder


def write_onnx(path: Path) -> Path:
    """:class:`SmallCNN` exported to ONNX (dynamic batch axis) with its spec beside it."""
    import warnings

    model, spec = small_cnn()
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        # opset 17: onnx2torch 1.5 converts no opset-19 Constant
        torch.onnx.export(model, (torch.zeros(1, SAMPLE_RATE),), str(path), dynamo=False,
                          opset_version=17, input_names=["wave"], output_names=["logits"],
                          dynamic_axes={"wave": {0: "batch"}, "logits": {0: "batch"}})
    del spec["layers"]  # default: every convolution and linear layer of the converted graph
    path.with_name(path.name + ".json").write_text(json.dumps(spec, indent=2))
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 examples/own_model.py OUT", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    print(f"hf:{write_hf(out / 'hf-wav2vec2')}")
    print(f"onnx:{write_onnx(out / 'small_cnn.onnx')}")
    print("torch:own_model:small_cnn  (with PYTHONPATH=examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
