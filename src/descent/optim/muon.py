"""Muon (Jordan et al. 2024): momentum whose matrix update is orthogonalized by a Newton–Schulz
iteration, with AdamW for the tensors that are not matrices, in one optimizer object."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim._compat import foreach
from descent.optim.adam import adam_foreach, adam_reference
from descent.optim.base import (
    DescentOptimizer,
    LearningRate,
    effective_grad,
    effective_grads,
    validate_betas,
)
from descent.optim.fastpath import Group, Host, State, StepArgs
from descent.optim.options import RuleOptions
from descent.optim.reference import apply_reference

#: the quintic Newton–Schulz coefficients of Jordan et al. (and torch.optim.Muon)
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
_LR_SCALES = ("original", "match_rms_adamw", "none")


def newton_schulz(
    matrix: Tensor,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    steps: int = 5,
    eps: float = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """An approximate U Vᵀ of M = U S Vᵀ (wide orientation: Mᵀ when M is tall), in ``dtype``:

    X ← M / max(‖M‖_F, ε)
    repeat ``steps`` times:  A = X Xᵀ ;  X ← aX + (bA + cA²) X

    ``matrix`` may be a stack (k, rows, cols) of same-shaped matrices: each is orthogonalized on
    its own, by one chain of batched products (``baddbmm``, which rounds as ``addmm`` does).
    """
    a, b, c = coefficients
    x = matrix.to(dtype)
    tall = matrix.size(-2) > matrix.size(-1)
    if tall:
        x = x.mT
    if x.dim() == 2:
        x = x / torch.clamp(torch.linalg.vector_norm(x), min=eps)
        for _ in range(steps):
            gram = x @ x.T
            # addmm as torch.optim.Muon computes it, so the two round alike in bfloat16
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    else:
        norms = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
        x = x / torch.clamp(norms, min=eps)
        for _ in range(steps):
            gram = torch.bmm(x, x.mT)
            x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def muon_lr_scale(shape: torch.Size, rule: str) -> float:
    """ "original": √max(1, A/B) ;  "match_rms_adamw": 0.2·√max(A, B) ;  "none": 1  (A×B the
    matrix)."""
    rows, cols = shape[0], math.prod(shape[1:])
    if rule == "original":
        return math.sqrt(max(1.0, rows / cols))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def muon_reference(
    param: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor,
    *,
    lr: float,
    momentum: float = 0.95,
    nesterov: bool = True,
    weight_decay: float = 0.1,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    ns_steps: int = 5,
    eps: float = 1e-7,
    ns_dtype: torch.dtype = torch.bfloat16,
    lr_scale: str = "original",
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """b ← μb + (1−μ)g ;  u = (1−μ)g + μb (nesterov) or b ;  O = NewtonSchulz(u)
    θ ← θ − ηλθ ;  θ ← θ − η·scale·O     (a tensor of more than 2 dims as (shape[0], −1))

    Returns (θ, b).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    momentum_buffer = momentum * momentum_buffer + (1 - momentum) * g
    update = (1 - momentum) * g + momentum * momentum_buffer if nesterov else momentum_buffer
    matrix = update.reshape(update.size(0), -1)
    ortho = newton_schulz(matrix, coefficients, ns_steps, eps, ns_dtype).reshape(param.shape)
    param = param - lr * weight_decay * param
    return param - lr * muon_lr_scale(param.shape, lr_scale) * ortho.to(
        param.dtype
    ), momentum_buffer


class Muon(DescentOptimizer):
    """Muon (K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024):
    momentum SGD whose update of each weight matrix is replaced by its nearest semi-orthogonal
    matrix (all singular values ≈ 1), computed by five Newton–Schulz steps in bfloat16.

        b ← μb + (1−μ)g
        u = (1−μ)g + μb  (Nesterov)  or  b
        X = u/‖u‖_F ;  5 × { A = XXᵀ ;  X ← aX + (bA + cA²)X }
                                          (a, b, c) = (3.4445, −4.775, 2.0315)
        θ ← θ − ηλθ ;  θ ← θ − η·√max(1, rows/cols)·X
                            η = 1e-3, μ = 0.95, λ = 0.1 (torch.optim.Muon's defaults)

    Tensors with 2 or more dimensions (a convolution's as (out, −1)) take Muon's step; the others
    (biases, norm scales), and any group with ``use_muon=False`` (embeddings and the output layer,
    by the usual recipe), take AdamW with ``adamw_betas``, ``adamw_eps`` and the group's η and λ.
    The fast path orthogonalizes the same-shaped matrices of a group together, as one chain of
    batched products. torch.optim.Muon computes exactly Muon's step (it refuses non-matrices);
    ``lr_scale="match_rms_adamw"`` is its ``adjust_lr_fn`` of that name.

    Example:
        >>> hidden = [p for p in model.body.parameters()]  # doctest: +SKIP
        >>> head = list(model.head.parameters())  # doctest: +SKIP
        >>> opt = Muon([{"params": hidden, "lr": 0.02},
        ...             {"params": head, "lr": 3e-4, "use_muon": False}])  # doctest: +SKIP
    """

    elementwise = False  # see DescentOptimizer.elementwise

    flags = ("nesterov", "use_muon")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        momentum: float = 0.95,
        weight_decay: float = 0.1,
        *,
        nesterov: bool = True,
        ns_steps: int = 5,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_dtype: torch.dtype = torch.bfloat16,
        lr_scale: str = "original",
        use_muon: bool = True,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-10,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                nesterov=nesterov,
                ns_steps=ns_steps,
                ns_coefficients=ns_coefficients,
                eps=eps,
                ns_dtype=ns_dtype,
                lr_scale=lr_scale,
                use_muon=use_muon,
                adamw_betas=adamw_betas,
                adamw_eps=adamw_eps,
            ),
            **options,
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.unit_interval(group["momentum"], "momentum (μ)")
        validate.positive_int(group["ns_steps"], "ns_steps")
        coefficients = group["ns_coefficients"]
        if not isinstance(coefficients, tuple | list) or len(coefficients) != 3:
            raise InputError(
                f"ns_coefficients must be three numbers (a, b, c), got {coefficients!r}"
            )
        group["ns_coefficients"] = tuple(
            validate.finite(value, f"ns_coefficients[{i}]") for i, value in enumerate(coefficients)
        )
        validate.positive(group["eps"], "eps (ε)")
        if group["ns_dtype"] not in (torch.bfloat16, torch.float32, torch.float64):
            raise InputError(
                f"ns_dtype must be torch.bfloat16, torch.float32 or torch.float64, "
                f"got {group['ns_dtype']!r}"
            )
        group["lr_scale"] = validate.choice(group["lr_scale"], "lr_scale", _LR_SCALES)
        group["adamw_betas"] = validate_betas(group["adamw_betas"])
        validate.positive(group["adamw_eps"], "adamw_eps")

    @staticmethod
    def _is_matrix(group: Group, param: Tensor) -> bool:
        return group["use_muon"] and param.dim() >= 2

    def _init_state(self, param: Tensor, group: Group) -> State:
        if self._is_matrix(group, param):
            return self.zeros(param, group, ["momentum_buffer"])
        return self.zeros(param, group, ["exp_avg", "exp_avg_sq"])

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, host: Host, lr: float
    ) -> None:
        if "momentum_buffer" in state:  # a matrix: Muon's step
            function: Callable[..., Any] = muon_reference
            tensors: tuple[str, ...] = ("momentum_buffer",)
            keywords: dict[str, Any] = {"coefficients": group["ns_coefficients"]}
        else:  # anything else: AdamW with the group's adamw_* hyperparameters
            beta1, beta2 = group["adamw_betas"]
            function, tensors = adam_reference, ("exp_avg", "exp_avg_sq")
            keywords = dict(
                beta1=beta1, beta2=beta2, eps=group["adamw_eps"], decoupled_weight_decay=True
            )
        apply_reference(function, group, param, grad, state, host, lr, tensors, **keywords)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        g = effective_grads(params, grads, 0.0, group["maximize"])
        wd = group["weight_decay"]
        matrices = [i for i, state in enumerate(states) if "momentum_buffer" in state]
        others = [i for i, state in enumerate(states) if "momentum_buffer" not in state]
        if matrices:
            mu = group["momentum"]
            weights = [params[i] for i in matrices]
            buffers = [states[i]["momentum_buffer"] for i in matrices]
            grads_m = [g[i] for i in matrices]
            foreach.lerp_(buffers, grads_m, 1 - mu)
            updates = buffers
            if group["nesterov"]:
                updates = foreach.mul(grads_m, 1 - mu)
                foreach.add_(updates, buffers, alpha=mu)
            foreach.add_(weights, weights, alpha=-lr * wd)  # θ ← θ − ηλθ
            # One chain of batched products per matrix shape (a single matrix keeps torch's
            # 2-D addmm chain).
            shapes: dict[torch.Size, list[int]] = {}
            for j, weight in enumerate(weights):
                shapes.setdefault(weight.shape, []).append(j)
            for shape, members in shapes.items():
                rows = shape[0]
                if len(members) == 1:
                    source = updates[members[0]].reshape(rows, -1)
                else:
                    source = torch.stack([updates[j].reshape(rows, -1) for j in members])
                ortho = newton_schulz(
                    source,
                    group["ns_coefficients"],
                    group["ns_steps"],
                    group["eps"],
                    group["ns_dtype"],
                )
                scale = muon_lr_scale(shape, group["lr_scale"])
                results = [ortho] if len(members) == 1 else list(ortho.unbind())
                foreach.add_(
                    [weights[j] for j in members],
                    [
                        o.reshape(shape).to(weights[j].dtype)
                        for j, o in zip(members, results, strict=True)
                    ],
                    alpha=-lr * scale,
                )
        if others:
            beta1, beta2 = group["adamw_betas"]
            adam_foreach(
                [params[i] for i in others],
                [g[i] for i in others],
                [states[i]["exp_avg"] for i in others],
                [states[i]["exp_avg_sq"] for i in others],
                step.steps(others),
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=group["adamw_eps"],
                weight_decay=wd,
                decoupled_weight_decay=True,
            )
