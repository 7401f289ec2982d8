"""The VGGish and OpenL3 CNNs as torch modules, with the weights of pqeval's exported ONNX files.

:func:`load_cnn` reads an exported model (``pqeval export vggish`` / ``pqeval export openl3``)
with ``onnx``, walks its graph node by node against the architecture built here (op types,
attributes, the chain of tensors, every initialiser's shape) and copies the initialisers into the
module with ``onnx.numpy_helper``. Anything else (another architecture, a compact int8/fp16
variant, a hand-edited graph) is refused with one line (ModelError) naming the file and the
first node that differs. The loss and the score therefore run the same weights: the ONNX file
is the only place they come from.

* :class:`VGGishCNN`: torchvggish's VGG (6 conv 3x3 + ReLU, 4 max-pools, 3 fully connected).
  Input log-mel examples (M, 96, 64); output the 128-d embedding before the final ReLU
  (``embedding_raw``, Google's TF VGGish); ``embedding`` = ReLU of it (torchvggish's). The PCA +
  8-bit post-processing of the file is not rebuilt: rounding has no useful gradient.
* :class:`OpenL3CNN`: openl3's audio CNN after the kapre frontend, as tf2onnx wrote it (the input
  batch norm; 7 conv 3x3 + ReLU with the following batch norms folded into them, 3 max-pools; the
  512-channel embedding conv; a max-pool over the whole map for 512-d, to a grid flattened in
  Keras' order for 6144-d). Input dB spectrograms (M, F, T); output (M, D).

Layers a :class:`~pqeval.loss.FeatureLoss` can read (:attr:`VGGishCNN.LAYERS`,
:attr:`OpenL3CNN.LAYERS`) are the activations after each ReLU, the embedding conv's output
before its pooling (OpenL3), and the embeddings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError
from ..openl3 import frontend_params

CONV = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1], "dilations": [1, 1], "group": 1}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "Conv": {"pads": [0, 0, 0, 0], "strides": [1, 1], "dilations": [1, 1], "group": 1, "auto_pad": "NOTSET"},
    "MaxPool": {
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "ceil_mode": 0,
        "storage_order": 0,
        "auto_pad": "NOTSET",
    },
    "Gemm": {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
    "BatchNormalization": {"training_mode": 0},
}


class _Graph:
    """Walks the nodes of an ONNX graph in order, checking each against what the module expects."""

    def __init__(self, proto: Any, path: Path, what: str) -> None:
        from onnx import numpy_helper

        self.path, self.what = path, what
        self.nodes = list(proto.graph.node)
        self.inits = {t.name: t for t in proto.graph.initializer}
        self.to_array = numpy_helper.to_array
        self.i = 0
        inputs = [i.name for i in proto.graph.input if i.name not in self.inits]
        if len(inputs) != 1:
            self.fail(f"the graph has {len(inputs)} inputs, expected 1")
        self.tensor = inputs[0]  # the tensor the next node must read

    def fail(self, why: str) -> NoReturn:
        raise ModelError(f"{self.path}: not the {self.what} graph pqeval.loss rebuilds ({why})")

    def take(
        self, op: str, weights: Sequence[tuple[int, ...]] = (), dtype: str = "float32", **attrs: Any
    ) -> tuple[Any, list[np.ndarray]]:
        """The next node: of type ``op``, reading the current tensor, with these attributes and
        initialisers of these shapes and ``dtype``; returns (node, initialiser arrays) and moves on
        to its output."""
        from onnx import helper

        if self.i >= len(self.nodes):
            self.fail(f"the graph ends after {self.i} nodes, expected a {op} next")
        node = self.nodes[self.i]
        where = f"node {self.i} ({node.name or node.op_type})"
        if node.op_type != op or node.domain not in ("", "ai.onnx"):
            self.fail(f"{where} is a {node.op_type}, expected a {op}")
        if not node.input or node.input[0] != self.tensor or len(node.output) != 1:
            self.fail(f"{where} does not continue the chain from {self.tensor}")
        got = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        got = {k: v.decode() if isinstance(v, bytes) else v for k, v in got.items()}
        want = {**_DEFAULTS.get(op, {}), **attrs}
        for name, value in want.items():
            have = got.get(name, _DEFAULTS.get(op, {}).get(name))
            if isinstance(value, float) and isinstance(have, float):
                same = abs(have - value) <= 1e-6 * max(1.0, abs(value))
            else:
                same = have == value
            if not same:
                self.fail(f"{where}: {name} = {have}, expected {value}")
        extra = sorted(set(got) - set(want) - {"epsilon", "momentum", "allowzero"})
        if extra:
            self.fail(f"{where} has attributes {', '.join(extra)} this module does not implement")
        arrays = []
        rest = list(node.input[1:])
        if len(rest) != len(weights):
            self.fail(f"{where} has {len(rest)} parameter inputs, expected {len(weights)}")
        for name, shape in zip(rest, weights, strict=True):
            if name not in self.inits:
                self.fail(f"{where}: {name} is not a stored weight")
            a = self.to_array(self.inits[name])
            if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
                self.fail(f"{where}: {name} is {a.dtype} {tuple(a.shape)}, expected {dtype} {tuple(shape)}")
            arrays.append(a)
        self.tensor = node.output[0]
        self.i += 1
        return node, arrays

    def reshape(self, shape: Sequence[int]) -> None:
        """A Reshape to ``shape`` (a leading 0 or -1 both mean the batch)."""
        node, (target,) = self.take("Reshape", weights=[(len(shape),)], dtype="int64")
        got = [int(v) for v in target]
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)  # then 0 is a literal 0
        if got[1:] != list(shape[1:]) or got[0] not in ((-1,) if allowzero else (0, -1)):
            self.fail(f"node {self.i - 1} reshapes to {got}, expected {list(shape)}")

    def output(self, name: str) -> None:
        if self.tensor != name:
            self.fail(f"node {self.i - 1} writes {self.tensor}, expected the output {name}")


def _load_layer(g: _Graph, op: str, layer: nn.Module, **attrs: Any) -> None:
    """The next node is ``op`` (Conv or Gemm) with ``layer``'s weight and bias: copy them in."""
    assert isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is not None
    _, (w, b) = g.take(op, weights=[tuple(layer.weight.shape), tuple(layer.bias.shape)], **attrs)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.array(w)))
        layer.bias.copy_(torch.from_numpy(np.array(b)))


class VGGishCNN(nn.Module):
    """torchvggish's VGG: log-mel examples (M, 96, 64) -> 128-d embedding before the final ReLU."""

    LAYERS: tuple[str, ...] = (
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "conv6",
        "fc1",
        "fc2",
        "embedding_raw",
        "embedding",
    )
    CHANNELS = (1, 64, 128, 256, 256, 512, 512)
    POOL_AFTER = (1, 2, 4, 6)  # convs followed by a 2x2 max-pool

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(self.CHANNELS[i], self.CHANNELS[i + 1], 3, padding=1) for i in range(len(self.CHANNELS) - 1)
        )
        self.fc1 = nn.Linear(512 * 6 * 4, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, 128)

    def activations(self, examples: Tensor, last: str = "embedding") -> Iterator[tuple[str, Tensor]]:
        """(name, activation) for each of :attr:`LAYERS` up to ``last``, in order."""
        x = examples[:, None]
        for i, conv in enumerate(self.convs, start=1):
            x = F.relu(conv(x))
            yield f"conv{i}", x
            if f"conv{i}" == last:
                return
            if i in self.POOL_AFTER:
                x = F.max_pool2d(x, 2, 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # torchvggish's two transposes, then flatten
        for name, fc in (("fc1", self.fc1), ("fc2", self.fc2)):
            x = F.relu(fc(x))
            yield name, x
            if name == last:
                return
        x = self.fc3(x)
        yield "embedding_raw", x
        if last != "embedding_raw":
            yield "embedding", F.relu(x)

    def forward(self, examples: Tensor) -> Tensor:
        """(M, 96, 64) -> ``embedding_raw`` (M, 128)."""
        *_, (_, raw) = self.activations(examples, "embedding_raw")
        return raw

    def load_onnx(self, proto: Any, path: Path) -> None:
        g = _Graph(proto, path, "VGGish")
        for i, conv in enumerate(self.convs, start=1):
            _load_layer(g, "Conv", conv, **CONV)
            g.take("Relu")
            if i in self.POOL_AFTER:
                g.take("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
        g.take("Transpose", perm=[0, 2, 3, 1])
        g.reshape([-1, 512 * 6 * 4])
        for n, fc in enumerate((self.fc1, self.fc2, self.fc3)):
            _load_layer(g, "Gemm", fc, transB=1)
            if n < 2:
                g.take("Relu")
        g.output("embedding_raw")
        g.take("Relu")
        g.output("embedding")


class OpenL3CNN(nn.Module):
    """openl3's audio CNN after kapre: dB spectrograms (M, F, T) -> embeddings (M, D)."""

    LAYERS: tuple[str, ...] = (
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "conv6",
        "conv7",
        "embedding_conv",
        "embedding",
    )
    CHANNELS = (1, 64, 64, 128, 128, 256, 256, 512)
    POOL_AFTER = (2, 4, 6)

    bn_mean: Tensor
    bn_var: Tensor
    bn_scale: Tensor
    bn_bias: Tensor

    def __init__(self, n_freq: int, n_frames: int, embedding_size: int) -> None:
        super().__init__()
        self.n_freq, self.n_frames, self.embedding_size = n_freq, n_frames, embedding_size
        for name in ("bn_mean", "bn_var", "bn_scale", "bn_bias"):
            self.register_buffer(name, torch.zeros(1))
        self.bn_epsilon = 1e-3
        self.convs = nn.ModuleList(
            nn.Conv2d(self.CHANNELS[i], self.CHANNELS[i + 1], 3, padding=1) for i in range(len(self.CHANNELS) - 1)
        )
        self.embedding_conv = nn.Conv2d(512, 512, 3, padding=1)
        h, w = n_freq, n_frames
        for _ in self.POOL_AFTER:
            h, w = h // 2, w // 2
        self.map = (h, w)
        # 512: the last max-pool covers the whole map; 6144: openl3 pools to a 512 x a x b grid
        # (read from the graph), flattened in Keras' (height, width, channel) order.
        self.pool = (h, w)

    def activations(self, spectrogram: Tensor, last: str = "embedding") -> Iterator[tuple[str, Tensor]]:
        """(name, activation) for each of :attr:`LAYERS` up to ``last``, in order."""
        x = spectrogram[:, None]
        x = (x - self.bn_mean) / torch.sqrt(self.bn_var + self.bn_epsilon) * self.bn_scale + self.bn_bias
        for i, conv in enumerate(self.convs, start=1):
            x = F.relu(conv(x))
            yield f"conv{i}", x
            if f"conv{i}" == last:
                return
            if i in self.POOL_AFTER:
                x = F.max_pool2d(x, 2, 2)
        x = self.embedding_conv(x)
        yield "embedding_conv", x
        if last != "embedding_conv":
            x = F.max_pool2d(x, self.pool, self.pool)
            yield "embedding", x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC flatten: a no-op for 1 x 1

    def forward(self, spectrogram: Tensor) -> Tensor:
        """(M, F, T) -> (M, D)."""
        *_, (_, emb) = self.activations(spectrogram)
        return emb

    def load_onnx(self, proto: Any, path: Path) -> None:
        g = _Graph(proto, path, "OpenL3")
        f, t = self.n_freq, self.n_frames
        g.reshape([-1, 1, f, t])  # NHWC with one channel -> NCHW
        node, arrays = g.take("BatchNormalization", weights=[(1,)] * 4)
        eps = [a.f for a in node.attribute if a.name == "epsilon"]
        self.bn_epsilon = float(eps[0]) if eps else 1e-5
        with torch.no_grad():
            for name, a in zip(("bn_scale", "bn_bias", "bn_mean", "bn_var"), arrays, strict=True):
                getattr(self, name).copy_(torch.from_numpy(np.array(a)))
        g.reshape([-1, 1, f, t])
        for i, conv in enumerate(self.convs, start=1):
            _load_layer(g, "Conv", conv, **CONV)
            g.take("Relu")
            if i in self.POOL_AFTER:
                g.take("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
        _load_layer(g, "Conv", self.embedding_conv, **CONV)
        if self.embedding_size == 512:
            g.take("MaxPool", kernel_shape=list(self.pool), strides=list(self.pool))
        else:
            node = g.nodes[g.i] if g.i < len(g.nodes) else None
            kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), []) if node else []
            grid = [m // k for m, k in zip(self.map, kernel, strict=False)] if len(kernel) == 2 and all(kernel) else []
            if len(grid) != 2 or grid[0] * grid[1] * 512 != self.embedding_size:
                g.fail(f"node {g.i} does not pool the {self.map} map to {self.embedding_size} values")
            self.pool = (kernel[0], kernel[1])
            g.take("MaxPool", kernel_shape=kernel, strides=kernel)
            g.take("Transpose", perm=[0, 2, 3, 1])
        g.reshape([-1, self.embedding_size])
        g.output("embedding")
        if g.i != len(g.nodes):
            g.fail(f"{len(g.nodes) - g.i} nodes after the embedding")


def load_cnn(path: str | Path, family: str, metadata: dict[str, str]) -> tuple[nn.Module, str | None]:
    """(the CNN of the exported model at ``path`` with its weights, OpenL3 input_repr or None).

    ``family``: "vggish" or "openl3" (the file's ``pqeval.model_id``); ``metadata``: its sidecar
    metadata (the OpenL3 frontend and embedding size are read from it). ModelError if the graph
    is not the architecture (one line naming the first node that differs) or unreadable.
    """
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises its own types (DecodeError, ValidationError, OSError, ...)
        raise ModelError(f"{path}: onnx cannot load it ({str(e).splitlines()[0][:200] if str(e) else e!r})") from None
    embedded = {p.key: p.value for p in proto.metadata_props}
    if embedded.get("pqeval.weights") != metadata.get("pqeval.weights"):
        raise ModelError(
            f"{path}: weight provenance in the file ({embedded.get('pqeval.weights')}) differs from its sidecar "
            f"({metadata.get('pqeval.weights')})"
        )
    model: VGGishCNN | OpenL3CNN
    if family == "vggish":
        model = VGGishCNN()
        model.load_onnx(proto, path)
        return _ready(model), None
    if family != "openl3":
        raise ModelError(f"{path}: a {family or 'unlabelled'} model; pqeval.loss knows vggish and openl3")
    try:
        params = json.loads(metadata["pqeval.frontend"])
        input_repr = params["input_repr"]
        expected = frontend_params(input_repr)
        size = int(json.loads(metadata["pqeval.io"])["embedding_size"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: no usable OpenL3 frontend description in its metadata") from None
    if params != expected:
        diff = sorted(k for k in set(params) | set(expected) if params.get(k) != expected.get(k))
        raise ModelError(f"{path}: exported with frontend parameters pqeval.loss does not compute ({', '.join(diff)})")
    n_freq, n_frames, _ = expected["input_shape"]
    model = OpenL3CNN(n_freq, n_frames, size)
    model.load_onnx(proto, path)
    return _ready(model), input_repr


def _ready(model: nn.Module) -> nn.Module:
    """Eval mode, conv weights in channels-last layout (oneDNN's fast path on CPU: 10-20 % faster
    forward + backward here, same results up to float32 summation order)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return model.eval()
