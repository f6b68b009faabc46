"""The loss as a function of a model's trainable parameters on fixed data, and its
Hessian-vector products by double backward (Pearlmutter 1994): ``H v = ∇_θ (∇_θ L · v)``.

The shared ground of :mod:`descent.diagnose.curvature` (see there for ``model``, ``loss`` and
``data``): every analysis runs on one :class:`Objective`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.errors import InputError

LossFn = Callable[[Tensor, Tensor], Tensor]
Batch = tuple[Tensor, Tensor]


# -- inputs -----------------------------------------------------------------------------------


def as_batches(data: Any) -> list[Batch]:
    """``data`` as a list of ``(inputs, targets)`` batches: one batch, or any iterable of them
    (a list, a DataLoader). Raises InputError on an empty batch or an empty sequence."""
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(part, Tensor) for part in data)
    ):
        batches = [(data[0], data[1])]
    else:
        try:
            batches = [tuple(batch) for batch in data]  # type: ignore[union-attr]
        except TypeError:
            raise InputError(
                f"data must be a batch (inputs, targets) or a sequence of batches, got "
                f"{type(data).__name__}"
            ) from None
        if not batches:
            raise InputError("data must hold at least one batch, got an empty sequence")
    for index, batch in enumerate(batches):
        if len(batch) != 2 or not all(isinstance(part, Tensor) for part in batch):
            raise InputError(
                f"batch {index} must be a pair of tensors (inputs, targets), got "
                f"{type(batch).__name__} of length {len(batch)}"
            )
        if batch[0].dim() == 0 or len(batch[0]) == 0:
            raise InputError(
                f"batch {index} is empty: its inputs have shape {tuple(batch[0].shape)}"
            )
    return batches  # type: ignore[return-value]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode inside the block, each one's own mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


def _resolve_dtype(dtype: torch.dtype | str | None, model: nn.Module) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, str):
        names = {"float32": torch.float32, "float64": torch.float64}
        return names[validate.choice(dtype, "dtype", names)]
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype


class Objective:
    """The loss as a function of the model's trainable parameters, on fixed data.

    Flat vectors: every method takes and returns one 1-D tensor over all trainable parameters in
    ``model.named_parameters()`` order (``unflatten`` gives them back per parameter).
    For a single batch the gradient's graph is built once and reused by every Hessian-vector
    product (one backward each); for several batches each product recomputes them batch by batch
    (memory stays that of one batch).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: LossFn,
        data: Any,
        *,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise InputError(
                f"the model ({type(model).__name__}) has no parameters that require grad, so the "
                "loss has no gradient or curvature to analyse"
            )
        if not callable(loss):
            raise InputError(f"loss must be a function (outputs, targets) → scalar, got {loss!r}")
        self.model, self.loss_fn = model, loss
        self.dtype = _resolve_dtype(dtype, model) or named[0][1].dtype
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.params = [p.detach().to(self.dtype).requires_grad_(True) for _, p in named]
        trainable = set(self.names)
        self.fixed: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            if name not in trainable:
                self.fixed[name] = p.detach().to(self.dtype)
        for name, buffer in model.named_buffers():
            self.fixed[name] = buffer.to(self.dtype) if buffer.is_floating_point() else buffer
        self.device = self.params[0].device
        self.batches = [
            (self._cast(inputs), self._cast(targets)) for inputs, targets in as_batches(data)
        ]
        counts = [len(inputs) for inputs, _ in self.batches]
        total = sum(counts)
        self.weights = [count / total for count in counts]
        self.examples = total
        self._graph: list[Tensor] | None = None
        self.hvp_count = 0

    def _cast(self, tensor: Tensor) -> Tensor:
        tensor = tensor.to(self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    @property
    def dimension(self) -> int:
        return sum(self.sizes)

    def flat_parameters(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def unflatten(self, vector: Tensor) -> list[Tensor]:
        return [
            part.view(shape)
            for part, shape in zip(vector.split(self.sizes), self.shapes, strict=True)
        ]

    def batch_loss(self, index: int, params: Sequence[Tensor] | None = None) -> Tensor:
        inputs, targets = self.batches[index]
        state = {**self.fixed, **dict(zip(self.names, params or self.params, strict=True))}
        value = self.loss_fn(torch.func.functional_call(self.model, state, (inputs,)), targets)
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(
                f"loss must return a scalar (one number per batch, e.g. a mean), got {shape}"
            )
        return value.reshape(())

    def loss_and_gradient(self) -> tuple[float, Tensor]:
        """The loss and its gradient (flat), averaged over the data's examples."""
        total_loss, total_grad = 0.0, torch.zeros(self.dimension, dtype=self.dtype)
        for index, weight in enumerate(self.weights):
            value = self.batch_loss(index)
            grads = torch.autograd.grad(value, self.params, allow_unused=True)
            total_grad += weight * self._flat(grads)
            total_loss += weight * float(value.detach())
        return total_loss, total_grad

    def _flat(self, parts: Sequence[Tensor | None]) -> Tensor:
        return torch.cat(
            [
                (part if part is not None else torch.zeros(shape, dtype=self.dtype)).reshape(-1)
                for part, shape in zip(parts, self.shapes, strict=True)
            ]
        ).to(self.device)

    def _gradient_graph(self, index: int) -> list[Tensor]:
        value = self.batch_loss(index)
        grads = torch.autograd.grad(value, self.params, create_graph=True, allow_unused=True)
        return [
            g if g is not None else torch.zeros_like(p)
            for g, p in zip(grads, self.params, strict=True)
        ]

    def gradient_with_example_losses(self) -> tuple[Tensor, Tensor] | None:
        """One forward pass on the (single) batch that serves both the Hessian-vector products
        and the gradient noise: it builds the gradient's graph (kept for :meth:`hvp`) and
        returns ``(gradient, example_losses)``: the flat gradient of the batch's loss and the N
        per-example losses ``ℓ_i`` (``loss`` applied to each example's output, by
        ``torch.vmap``) with their graph, so that ``∇ Σ c_i ℓ_i`` costs one backward pass and
        no forward. None when there are several batches, when ``loss`` cannot be applied
        example by example, or when the batch's loss is not the mean of the ``ℓ_i`` (a sum, a
        weighting): the caller then estimates the noise another way."""
        if len(self.batches) != 1:
            return None
        inputs, targets = self.batches[0]
        state = {**self.fixed, **dict(zip(self.names, self.params, strict=True))}
        outputs = torch.func.functional_call(self.model, state, (inputs,))
        value = self.loss_fn(outputs, targets)
        if not isinstance(value, Tensor) or value.numel() != 1:
            return None
        try:
            losses = torch.vmap(
                lambda output, target: self.loss_fn(output.unsqueeze(0), target.unsqueeze(0))
            )(outputs, targets).reshape(-1)
        except Exception:  # a loss vmap cannot batch: the caller falls back
            return None
        if len(losses) != len(inputs) or not torch.allclose(
            losses.detach().mean(), value.detach().reshape(()), rtol=1e-4, atol=1e-6
        ):
            return None
        grads = torch.autograd.grad(
            value.reshape(()), self.params, create_graph=True, allow_unused=True
        )
        self._graph = [
            g if g is not None else torch.zeros_like(p)
            for g, p in zip(grads, self.params, strict=True)
        ]
        return self._flat([g.detach() for g in self._graph]), losses

    def example_gradient_sum(self, losses: Tensor, weights: Tensor) -> Tensor:
        """``∇ Σ_i w_i ℓ_i`` (flat) for the per-example losses of
        :meth:`gradient_with_example_losses`: one backward pass through their kept graph."""
        grads = torch.autograd.grad(
            losses,
            self.params,
            grad_outputs=weights.to(losses),
            retain_graph=True,
            allow_unused=True,
        )
        return self._flat(grads)

    def graph_gradient(self) -> Tensor | None:
        """The flat gradient held by the products' graph (built now if needed): free on a single
        batch; None for several batches, whose products rebuild their graphs each time."""
        if len(self.batches) != 1:
            return None
        if self._graph is None:
            self._graph = self._gradient_graph(0)
        return self._flat([g.detach() for g in self._graph])

    def hvp(self, vector: Tensor) -> Tensor:
        """``H v`` by double backward: ∇(∇L · v)."""
        self.hvp_count += 1
        parts = self.unflatten(vector.to(self.dtype))
        if len(self.batches) == 1:
            if self._graph is None:
                self._graph = self._gradient_graph(0)
            return self._vjp(self._graph, parts, retain=True)
        total = torch.zeros(self.dimension, dtype=self.dtype, device=self.device)
        for index, weight in enumerate(self.weights):
            total += weight * self._vjp(self._gradient_graph(index), parts, retain=False)
        return total

    def hvp_many(self, vectors: Tensor, *, batched: bool | None = None) -> Tensor:
        """``H V`` for the rows of ``V`` (m × d): ``batched`` in one batched backward where torch
        can (``is_grads_batched``), else one product per row. The default batches on an
        accelerator and loops on a CPU, where the loop is the faster of the two (vmap's batched
        double backward measured 1.0–1.5× the loop's time on the digits CNNs)."""
        if batched is None:
            batched = self.device.type != "cpu"
        if len(self.batches) == 1 and batched:
            if self._graph is None:
                self._graph = self._gradient_graph(0)
            rows = [
                part.reshape(len(vectors), *shape)
                for part, shape in zip(
                    vectors.to(self.dtype).split(self.sizes, dim=1), self.shapes, strict=True
                )
            ]
            try:
                products = torch.autograd.grad(
                    self._graph,
                    self.params,
                    grad_outputs=rows,
                    retain_graph=True,
                    allow_unused=True,
                    is_grads_batched=True,
                )
            except RuntimeError:  # an op without a batching rule: one product at a time
                pass
            else:
                self.hvp_count += len(vectors)
                return torch.cat(
                    [
                        (
                            p if p is not None else torch.zeros(len(vectors), *s, dtype=self.dtype)
                        ).reshape(len(vectors), -1)
                        for p, s in zip(products, self.shapes, strict=True)
                    ],
                    dim=1,
                )
        return torch.stack([self.hvp(row) for row in vectors])

    def _vjp(self, graph: list[Tensor], parts: list[Tensor], retain: bool) -> Tensor:
        products = torch.autograd.grad(
            graph, self.params, grad_outputs=parts, retain_graph=retain, allow_unused=True
        )
        return self._flat(products)

    def dense_hessian(self) -> Tensor:
        """The d × d Hessian (d products; for small models and tests)."""
        eye = torch.eye(self.dimension, dtype=self.dtype, device=self.device)
        return self.hvp_many(eye, batched=True)  # thousands of tiny products: batching wins


def hessian_vector_product(
    model: nn.Module, loss: LossFn, data: Any, vector: Tensor, *, dtype: Any = None
) -> Tensor:
    """``H v`` for one flat vector ``v`` over the trainable parameters (see :class:`Objective`)."""
    with evaluation_mode(model):
        objective = Objective(model, loss, data, dtype=dtype)
        if vector.numel() != objective.dimension:
            raise InputError(
                f"vector must have one entry per trainable parameter ({objective.dimension}), "
                f"got {vector.numel()}"
            )
        return objective.hvp(vector.reshape(-1))


def dense_hessian(model: nn.Module, loss: LossFn, data: Any, *, dtype: Any = None) -> Tensor:
    """The full Hessian matrix (d × d, d products): for small models and checks."""
    with evaluation_mode(model):
        return Objective(model, loss, data, dtype=dtype).dense_hessian()
