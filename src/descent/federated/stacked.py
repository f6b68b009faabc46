"""The forward pass of K clients' models at once, written out for the layer types of descent's
CNN: what ``vmap(functional_call(model, ...))`` computes, laid out the way CPU kernels run fast.

Client k holds its own weights θ_k (every tensor stacked on a leading client axis, shape
``(K, *shape)``) and its own batch x_k; the forward pass is f(θ_k, x_k) for every k. vmap's
batching rule for a convolution already produces a grouped convolution with the clients as the
groups (Krizhevsky et al. 2012's grouped convolution; one group of channels per client):

    activations (B, K·C, H, W) ⊛ weights (K·C_out, C/g, kh, kw), groups = K·g,

so group k of the output is conv(x_k, θ_k) exactly. What the generic path loses is memory layout:
max-pooling of the (B, K·C, H, W) activations in torch's default NCHW layout runs ~20× slower
on one CPU thread than in channels-last layout (NHWC, measured for these shapes), and under vmap
the layout cannot be chosen. Here the activations stay channels-last from the input on, so the
pooling takes the vectorized NHWC kernel; :func:`stack_weights` stores the clients' convolution
weights channels-last too (no weight copy per call, gradients in the weights' own layout); a
ReLU followed by max-pooling runs after it, on a quarter of the values (relu(max(a, b)) =
max(relu(a), relu(b)) exactly); a linear layer is one batched matrix product
``baddbmm(b_k, h_k, W_kᵀ)`` over the clients.

Supported: :class:`descent.models.SmallCNN` (without dropout) and ``nn.Sequential`` stacks of
``Conv2d`` (zero padding), ``ReLU``, ``MaxPool2d``, ``Flatten``, ``Linear``, ``Identity`` and
``Dropout(p=0)``. :func:`stacked_forward` returns None for any other model, whose clients then
run under vmap (still stacked, with the generic layout).

Example::

    >>> model = SmallCNN((1, 8, 8), 10)
    >>> names = [name for name, _ in model.named_parameters()]
    >>> forward = stacked_forward(model, names)
    >>> weights = stack_weights(model, names, list(model.parameters()), clients=3)
    >>> forward(dict(zip(names, weights)), torch.randn(3, 10, 64)).shape  # K = 3, B = 10
    torch.Size([3, 10, 10])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: a stacked forward: (stacked weights by parameter name, inputs (K, B, ...)) → outputs (K, B, ...)
StackedForward = Callable[[dict[str, Tensor], Tensor], Tensor]

# A layer maps (weights by name, activations, clients) to activations. Two layouts travel between
# layers: "grouped" (B, K·C, H, W) channels-last for the convolutional part, "rows" (K, B, F)
# for the fully connected part.
_Layer = Callable[[dict[str, Tensor], Tensor, int], Tensor]


def _conv(prefix: str, conv: nn.Conv2d) -> _Layer | None:
    if conv.padding_mode != "zeros":
        return None

    def layer(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
        weight = weights[prefix + "weight"]
        bias = weights.get(prefix + "bias")
        return F.conv2d(
            x,
            weight.reshape(-1, *weight.shape[2:]),
            None if bias is None else bias.reshape(-1),
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups * clients,
        )

    return layer


def _pool(pool: nn.MaxPool2d) -> _Layer | None:
    if pool.return_indices:
        return None

    def layer(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
        # the NHWC pooling kernel (a no-op copy when the convolution already returned NHWC)
        x = x.contiguous(memory_format=torch.channels_last)
        return F.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                            ceil_mode=pool.ceil_mode)  # fmt: skip

    return layer


def _linear(prefix: str, linear: nn.Linear) -> _Layer:
    def layer(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
        weight = weights[prefix + "weight"].transpose(1, 2)
        bias = weights.get(prefix + "bias")
        if bias is None:
            return torch.bmm(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight)

    return layer


def _relu(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
    return torch.relu(x)


def _identity(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
    return x


def _to_rows(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
    """(B, K·C, H, W) → (K, B, C·H·W), each example flattened in (C, H, W) order as
    ``Tensor.flatten(1)`` does for one client."""
    return x.reshape(len(x), clients, -1).transpose(0, 1)


def _flatten(weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
    """(K, B, ...) → (K, B, F)."""
    return x.flatten(2)


def _layers(
    prefix: str, modules: Sequence[nn.Module], layout: str
) -> tuple[list[_Layer], str] | None:
    """Each module's stacked layer, starting in ``layout`` ("grouped" or "rows"), and the layout
    the last one leaves; None if a module is not supported or needs the other layout (a
    convolution after a fully connected layer)."""
    layers: list[_Layer] = []
    for index, module in enumerate(modules):
        name = f"{prefix}{index}."
        layer: _Layer | None
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            if layout != "grouped":
                return None
            layer = _conv(name, module) if isinstance(module, nn.Conv2d) else _pool(module)
        elif isinstance(module, nn.Linear):
            layer = _linear(name, module) if layout == "rows" else None
        elif isinstance(module, nn.ReLU):
            layer = _relu
        elif isinstance(module, nn.Identity) or (isinstance(module, nn.Dropout) and module.p == 0):
            layer = _identity
        elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
            layer = _to_rows if layout == "grouped" else _flatten
            layout = "rows"
        else:
            layer = None
        if layer is None:
            return None
        if isinstance(module, nn.MaxPool2d) and layers and layers[-1] is _relu:
            # max-pooling after a ReLU: pool first, then the ReLU on a quarter of the values.
            # max(relu(a), relu(b)) = relu(max(a, b)) exactly, and the gradient reaches the same
            # input (the window's first maximum, or none when the window is ≤ 0).
            layers.insert(len(layers) - 1, layer)
            continue
        layers.append(layer)
    return layers, layout


def _run(layers: list[_Layer], weights: dict[str, Tensor], x: Tensor, clients: int) -> Tensor:
    for layer in layers:
        x = layer(weights, x, clients)
    return x


def _grouped_input(x: Tensor, image_shape: Sequence[int]) -> Tensor:
    """(K, B, ...) images → (B, K·C, H, W) in channels-last layout."""
    clients, batch = x.shape[:2]
    channels, height, width = image_shape
    x = x.reshape(clients, batch, channels, height, width).transpose(0, 1)
    x = x.reshape(batch, clients * channels, height, width)
    return x.contiguous(memory_format=torch.channels_last)


def _small_cnn(model: nn.Module) -> StackedForward | None:
    from descent.models import SmallCNN

    if type(model) is not SmallCNN:
        return None
    features = _layers("features.", list(model.features), "grouped")
    head = _layers("", [model.dropout], "rows")
    if features is None or features[1] != "grouped" or head is None:
        return None
    layers = [*features[0], _to_rows, *head[0], _linear("classifier.", model.classifier)]
    image_shape = model.image_shape

    def forward(weights: dict[str, Tensor], x: Tensor) -> Tensor:
        return _run(layers, weights, _grouped_input(x, image_shape), len(x))

    return forward


def _sequential(model: nn.Module) -> StackedForward | None:
    if type(model) is not nn.Sequential or len(model) == 0:
        return None
    # images in the grouped layout when a convolution comes before any flattening
    first = next((m for m in model if isinstance(m, nn.Conv2d | nn.Linear | nn.Flatten)), None)
    convolutional = isinstance(first, nn.Conv2d)
    built = _layers("", list(model), "grouped" if convolutional else "rows")
    if built is None or built[1] != "rows":  # the output must be (K, B, F) logits
        return None
    layers = built[0]

    def forward(weights: dict[str, Tensor], x: Tensor) -> Tensor:
        clients = len(x)
        if convolutional:
            x = _grouped_input(x, (first.in_channels, *x.shape[-2:]))  # type: ignore[union-attr]
        return _run(layers, weights, x, clients)

    return forward


def stack_weights(
    model: nn.Module, names: Sequence[str], weights: Sequence[Tensor], clients: int
) -> list[Tensor]:
    """K copies of ``weights`` as leaf tensors (clients, *shape), each in the memory layout the
    stacked forward reads without a copy: a convolution's weights channels-last (the grouped
    convolution's weight view is then NHWC, as its NHWC input wants, and its gradient comes back
    in the same layout; with one input channel per group both layouts are the same memory order,
    and the gradient comes back contiguous), a linear layer's weights stored transposed
    (``baddbmm`` reads Wᵀ contiguous). The values are the same whatever the layout."""
    modules = dict(model.named_modules())
    stacked = []
    for name, weight in zip(names, weights, strict=True):
        owner, _, leaf = name.rpartition(".")
        module = modules.get(owner)
        if leaf == "weight" and isinstance(module, nn.Conv2d) and weight.shape[1] > 1:
            out_channels, in_channels, height, width = weight.shape
            empty = weight.new_empty((clients, out_channels, height, width, in_channels))
            empty = empty.permute(0, 1, 4, 2, 3)
        elif leaf == "weight" and isinstance(module, nn.Linear):
            empty = weight.new_empty((clients, weight.shape[1], weight.shape[0])).transpose(1, 2)
        else:
            empty = weight.new_empty((clients, *weight.shape))
        stacked.append(empty.copy_(weight.detach()).requires_grad_())
    return stacked


def stacked_forward(model: nn.Module, names: Sequence[str]) -> StackedForward | None:
    """The stacked forward pass of ``model`` (weights named as ``names``, its
    ``named_parameters`` order), or None when the model has a layer this module does not
    write out (then vmap runs it). The model must have no buffers: they are not stacked."""
    if any(True for _ in model.buffers()):
        return None
    forward = _small_cnn(model) or _sequential(model)
    if forward is None:
        return None
    expected = {name for name, _ in model.named_parameters()}
    if set(names) != expected:
        return None
    return forward


__all__ = ["StackedForward", "stack_weights", "stacked_forward"]
