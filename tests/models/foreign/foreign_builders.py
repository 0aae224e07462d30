"""Tiny foreign models for the adapter tests, built locally with random weights.

Hugging Face folders come from ``transformers`` config objects and ``save_pretrained`` (no
download); ``make_cnn`` is the ``torch:foreign_builders:make_cnn`` factory (this folder is put
on ``sys.path`` by the tests).
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

SR = 16000
LABELS = ("yes", "no", "maybe")
_ID2LABEL = dict(enumerate(LABELS))
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             num_labels=3, id2label=_ID2LABEL, label2id={v: k for k, v in _ID2LABEL.items()},
             initializer_range=0.2)
_CONVS = dict(conv_dim=(16, 16, 16), conv_stride=(5, 4, 2), conv_kernel=(10, 4, 2),
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
              classifier_proj_size=8, layerdrop=0.0)


def _config(family: str):
    if family == "wav2vec2":
        return tf.Wav2Vec2Config(**_TINY, **_CONVS)
    if family == "hubert":
        return tf.HubertConfig(**_TINY, **_CONVS)
    if family == "wavlm":
        return tf.WavLMConfig(**_TINY, **_CONVS, num_buckets=16, max_bucket_distance=40)
    if family == "data2vec-audio":
        return tf.Data2VecAudioConfig(**_TINY, **{**_CONVS, "num_conv_pos_embeddings": 3},
                                      conv_pos_kernel_size=5)
    if family == "ast":
        return tf.ASTConfig(**_TINY, patch_size=8, frequency_stride=8, time_stride=8,
                            max_length=64, num_mel_bins=24)
    if family == "whisper":
        return tf.WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=64,
                                decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50,
                                vocab_size=64, classifier_proj_size=8, init_std=0.2,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                decoder_start_token_id=1,
                                **{k: v for k, v in _TINY.items() if k in
                                   ("num_labels", "id2label", "label2id")})
    raise ValueError(family)


def _extractor(family: str):
    if family == "ast":
        return tf.ASTFeatureExtractor(num_mel_bins=24, max_length=64)
    if family == "whisper":
        return tf.WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    return tf.Wav2Vec2FeatureExtractor(sampling_rate=SR, do_normalize=True)


FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "ast", "whisper")


def save_tiny(family: str, folder: Path, *, seed: int = 0) -> Path:
    """A tiny random ``family`` audio classifier and its feature extractor in ``folder``."""
    torch.manual_seed(seed)
    model = tf.AutoModelForAudioClassification.from_config(_config(family))
    model.save_pretrained(folder)
    _extractor(family).save_pretrained(folder)
    return folder


class TinyCNN(torch.nn.Module):
    """A 2-d CNN over a waveform's frames: (batch, 4000) -> (batch, 1, 40, 100) -> 3 logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv1d(4 * 20, 8, 5, padding=2)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x.reshape(-1, 1, 40, 100))))
        h = torch.nn.functional.max_pool2d(h, (2, 1))
        h = torch.relu(self.conv2(h.reshape(h.shape[0], -1, 100)))
        return self.head(h.mean(dim=-1))


def make_cnn(seed: int = 0):
    """``torch:foreign_builders:make_cnn``: the CNN (random BatchNorm statistics) and its spec."""
    torch.manual_seed(seed)
    model = TinyCNN()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.3, 0.3)
        model.bn1.running_var.uniform_(0.5, 2.0)
    spec = {"input": "waveform", "sample_rate": 4000, "n_samples": 4000, "labels": list(LABELS),
            "layers": {"conv1": "conv1", "conv2": "conv2",
                       "pooled": {"module": "head", "kind": "vector", "capture": "input"}}}
    return model, spec


def make_cnn_with_attribute():
    """The same CNN, its spec as ``hearsight_spec`` (the other factory form)."""
    model, spec = make_cnn()
    model.hearsight_spec = spec
    return model
