"""PyTorch peers of the hearsight classifiers, for the forward benchmark (benchmarks/forward.py).

Each peer is the same architecture as its flax ``nnx`` model in :mod:`models.architectures`,
written the way a PyTorch user would (NCHW, 'same' padding, flatten in ``(c, h, w)``
order), in eval mode, and returns ``(logits, {name: tensor})`` with the same layer names:
conv activations before pooling ``(b, c, h, w)``, dense activations ``(b, units)``, logits.
The ``from_nnx`` functions copy a model's weights across (kernel HWIO → OIHW, dense
``(in, out)`` → ``(out, in)`` with the first dense layer's inputs reordered from the NHWC
flatten order ``(h, w, c)`` to NCHW's ``(c, h, w)``), so both frameworks compute the same
function and timings compare like with like.

PyTorch is a benchmark-only dependency (``pip install torch==2.13.0`` gives a CPU build).

References:
  d-DeVIS CNN (Krug, Knaebel & Stober 2018); Soomro et al. speech-command classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.architectures import DdevisCNN, SoomroCNN, variable_value


def _np(v) -> np.ndarray:
    return np.asarray(variable_value(v), dtype=np.float32)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))


def _conv_shapes(input_shape: tuple[int, int], n_pools: int) -> tuple[int, int]:
    h, w = input_shape
    for _ in range(n_pools):
        h, w = h // 2, w // 2
    return h, w


class TorchDdevisCNN(nn.Module):
    """d-DeVIS CNN in PyTorch: 4 × (conv 'same' → ReLU → BatchNorm → 2×2 max-pool →
    dropout), dense 256 ReLU, dropout, logits. Input ``(b, freq, time)`` float32."""

    layer_names = ("conv1", "conv2", "conv3", "conv4", "dense1", "logits")
    blocks = DdevisCNN.blocks

    def __init__(self, n_classes: int, input_shape: tuple[int, int] = (160, 150)):
        super().__init__()
        self.input_shape = tuple(input_shape)
        c_in, convs, bns = 1, [], []
        for c, k in self.blocks:
            convs.append(nn.Conv2d(c_in, c, kernel_size=k, padding="same"))
            bns.append(nn.BatchNorm2d(c, eps=1e-5))
            c_in = c
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
        self.drop, self.drop_dense = nn.Dropout(0.25), nn.Dropout(0.5)
        h, w = _conv_shapes(self.input_shape, len(self.blocks))
        self.dense1 = nn.Linear(h * w * c_in, 256)
        self.out = nn.Linear(256, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        acts: dict[str, torch.Tensor] = {}
        h = x.unsqueeze(1)
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns), start=1):
            h = bn(F.relu(conv(h)))
            acts[f"conv{i}"] = h
            h = self.drop(F.max_pool2d(h, 2))
        h = F.relu(self.dense1(torch.flatten(h, 1)))
        acts["dense1"] = h
        logits = self.out(self.drop_dense(h))
        acts["logits"] = logits
        return logits, acts


class TorchSoomroCNN(nn.Module):
    """Soomro et al.'s CNN in PyTorch: 3 × (conv 2×2 'same' → ReLU → 2×2 max-pool),
    dense 512/256/128 ReLU, logits. Input ``(b, freq, time)`` float32."""

    layer_names = ("conv1", "conv2", "conv3", "dense1", "dense2", "dense3", "logits")

    def __init__(self, n_classes: int = 35, input_shape: tuple[int, int] = (80, 90)):
        super().__init__()
        self.input_shape = tuple(input_shape)
        chans = (1, 8, 16, 32)
        # 'SAME' for an even kernel pads (0 before, 1 after), as XLA does; padded explicitly
        # (torch's padding="same" does the same but warns about the copy it makes).
        self.convs = nn.ModuleList(nn.Conv2d(a, b, kernel_size=2)
                                   for a, b in zip(chans[:-1], chans[1:]))
        h, w = _conv_shapes(self.input_shape, 3)
        units = (h * w * 32, 512, 256, 128)
        self.denses = nn.ModuleList(nn.Linear(a, b) for a, b in zip(units[:-1], units[1:]))
        self.out = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        acts: dict[str, torch.Tensor] = {}
        h = x.unsqueeze(1)
        for i, conv in enumerate(self.convs, start=1):
            h = F.relu(conv(F.pad(h, (0, 1, 0, 1))))
            acts[f"conv{i}"] = h
            h = F.max_pool2d(h, 2)
        h = torch.flatten(h, 1)
        for i, dense in enumerate(self.denses, start=1):
            h = F.relu(dense(h))
            acts[f"dense{i}"] = h
        logits = self.out(h)
        acts["logits"] = logits
        return logits, acts


def _copy_conv(dst: nn.Conv2d, src) -> None:
    dst.weight.copy_(_t(_np(src.kernel).transpose(3, 2, 0, 1)))  # HWIO -> OIHW
    dst.bias.copy_(_t(_np(src.bias)))


def _copy_dense(dst: nn.Linear, src, *, nhwc_in: tuple[int, int, int] | None = None) -> None:
    w = _np(src.kernel)  # (in, out)
    if nhwc_in is not None:  # rows in (h, w, c) flatten order -> (c, h, w)
        h, wd, c = nhwc_in
        w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
    dst.weight.copy_(_t(w.T))
    dst.bias.copy_(_t(_np(src.bias)))


def _copy_bn(dst: nn.BatchNorm2d, src) -> None:
    if abs(float(src.epsilon) - dst.eps) > 1e-12:
        raise ValueError(f"BatchNorm epsilon differs: flax {src.epsilon} vs torch {dst.eps}")
    for name, value in (("weight", src.scale), ("bias", src.bias),
                        ("running_mean", src.mean), ("running_var", src.var)):
        getattr(dst, name).copy_(_t(_np(value)))


@torch.no_grad()
def ddevis_from_nnx(model: DdevisCNN) -> TorchDdevisCNN:
    """A :class:`TorchDdevisCNN` in eval mode holding ``model``'s weights and BN statistics."""
    if not isinstance(model, DdevisCNN):
        raise ValueError(f"expected a DdevisCNN, got {type(model).__name__}")
    peer = TorchDdevisCNN(model.n_classes, model.input_shape)
    for i, (conv, bn) in enumerate(zip(peer.convs, peer.bns), start=1):
        _copy_conv(conv, getattr(model, f"conv{i}"))
        _copy_bn(bn, getattr(model, f"bn{i}"))
    h, w = _conv_shapes(model.input_shape, len(peer.blocks))
    _copy_dense(peer.dense1, model.dense1, nhwc_in=(h, w, peer.blocks[-1][0]))
    _copy_dense(peer.out, model.out)
    return peer.eval()


@torch.no_grad()
def soomro_from_nnx(model: SoomroCNN) -> TorchSoomroCNN:
    """A :class:`TorchSoomroCNN` in eval mode holding ``model``'s weights."""
    if not isinstance(model, SoomroCNN):
        raise ValueError(f"expected a SoomroCNN, got {type(model).__name__}")
    peer = TorchSoomroCNN(model.n_classes, model.input_shape)
    for i, conv in enumerate(peer.convs, start=1):
        _copy_conv(conv, getattr(model, f"conv{i}"))
    h, w = _conv_shapes(model.input_shape, 3)
    for i, dense in enumerate(peer.denses, start=1):
        _copy_dense(dense, getattr(model, f"dense{i}"), nhwc_in=(h, w, 32) if i == 1 else None)
    _copy_dense(peer.out, model.out)
    return peer.eval()


def peer_from_nnx(model) -> nn.Module:
    """The PyTorch peer of a ``DdevisCNN`` or ``SoomroCNN`` with its weights copied."""
    if isinstance(model, DdevisCNN):
        return ddevis_from_nnx(model)
    if isinstance(model, SoomroCNN):
        return soomro_from_nnx(model)
    raise ValueError(f"no PyTorch peer for {type(model).__name__}; "
                     "supported: DdevisCNN, SoomroCNN")


def acts_as_nhwc(acts: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Peer activations as NumPy in the JAX layout (4-D NCHW → NHWC) for comparison."""
    return {k: (v.permute(0, 2, 3, 1) if v.ndim == 4 else v).detach().numpy()
            for k, v in acts.items()}
