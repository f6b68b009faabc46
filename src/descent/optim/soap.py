"""SOAP (Vyas et al. 2024): Adam run in the eigenbasis of Shampoo's preconditioner, the basis
refreshed every few steps by one power-iteration step and a QR decomposition."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim._compat import foreach
from descent.optim.adam import validate_moments
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

_CONVENTIONS = ("paper", "heavyball")
# heavyball's floor for the shift of its power iteration (the ε it passes to its QR step)
_HEAVYBALL_QR_FLOOR = 1e-8


def soap_matrix_shape(shape: torch.Size) -> tuple[int, int]:
    """The matrix a tensor is preconditioned as: (shape[0], rest) for 2 or more dimensions (a
    convolution's kernel as (out, in·kh·kw)), (1, n) for a vector (which takes plain Adam)."""
    if len(shape) >= 2:
        return shape[0], math.prod(shape[1:])
    return 1, math.prod(shape)


def soap_sides(shape: torch.Size, max_precond_dim: int) -> tuple[bool, bool]:
    """Whether the rows (left factor L) and the columns (right factor R) are preconditioned: a
    side is when the tensor is a matrix and its size is between 2 and ``max_precond_dim``."""
    if len(shape) < 2:
        return False, False
    rows, cols = soap_matrix_shape(shape)
    return 1 < rows <= max_precond_dim, 1 < cols <= max_precond_dim


def eigenbasis(factor: Tensor) -> Tensor:
    """The eigenvectors of a symmetric factor, by decreasing eigenvalue (the initial Q)."""
    return torch.flip(torch.linalg.eigh(factor).eigenvectors, [-1])


def refresh_basis(factor: Tensor, basis: Tensor, convention: str = "paper") -> Tensor:
    """One power-iteration step towards the eigenvectors of ``factor`` (batched over leading
    dimensions): λ̃ = diag(QᵀLQ) ;  Q ← QR(L Q) with the columns taken in decreasing λ̃, each
    put back in its place (so the Adam state stays aligned), signed so that R's diagonal is ≥ 0.

    convention="heavyball": QR((L + δI)Q) with δ = max(1e-8, min(64·n·ε_dtype, 1/8))·max|λ̃|.
    """
    work = factor @ basis
    estimate = (basis * work).sum(dim=-2)  # diag(QᵀLQ)
    if convention == "heavyball":
        magnitude = (
            estimate.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(factor.dtype).tiny)
        )
        noise = min(64 * factor.shape[-1] * torch.finfo(factor.dtype).eps, 0.125)
        lift = max(_HEAVYBALL_QR_FLOOR, noise)
        work = work + (lift * magnitude).unsqueeze(-2) * basis
    order = torch.argsort(estimate, dim=-1, descending=True)
    index = order.unsqueeze(-2).expand_as(work)
    orthogonal, triangular = torch.linalg.qr(work.gather(-1, index))
    signs = triangular.diagonal(dim1=-2, dim2=-1).sign()
    signs = torch.where(signs != 0, signs, torch.ones_like(signs))
    return work.scatter(-1, index, orthogonal * signs.unsqueeze(-2))


def refreshes(step: int, frequency: int, convention: str) -> bool:
    """Whether the basis is refreshed after Adam update t = step − 1: t ≡ 0 (mod f) in the paper,
    t + 1 ≡ 0 in heavyball (which counts the initializing call)."""
    t = step - 1 if convention == "paper" else step
    return t % frequency == 0


def rotate(x: Tensor, q_left: Tensor | None, q_right: Tensor | None) -> Tensor:
    """Q_Lᵀ X Q_R: X (one matrix or a stack) into the eigenbasis; a side without a basis is I."""
    if q_left is not None:
        x = q_left.mT @ x
    if q_right is not None:
        x = x @ q_right
    return x


def rotate_back(x: Tensor, q_left: Tensor | None, q_right: Tensor | None) -> Tensor:
    """Q_L X Q_Rᵀ: the inverse of :func:`rotate` (the bases are orthogonal)."""
    if q_left is not None:
        x = q_left @ x
    if q_right is not None:
        x = x @ q_right.mT
    return x


def soap_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    left: Tensor | None,
    right: Tensor | None,
    q_left: Tensor | None,
    q_right: Tensor | None,
    *,
    step: int,
    lr: float,
    beta1: float = 0.95,
    beta2: float = 0.95,
    shampoo_beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    precondition_frequency: int = 10,
    convention: str = "paper",
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """One SOAP step on one tensor, G its gradient as a matrix (``soap_matrix_shape``); a side
    that is not preconditioned (``left``/``right`` None) has Q = I.

    step 1 (initialization, θ unchanged):
        L = (1−β_s)GGᵀ ;  R = (1−β_s)GᵀG ;  Q_L, Q_R = eigenvectors (decreasing eigenvalue)
    step s ≥ 2, t = s − 1:
        G' = Q_Lᵀ G Q_R ;  M ← β₁M + (1−β₁)G ;  M' = Q_Lᵀ M Q_R ;  V ← β₂V + (1−β₂)G'²
        N' = (M'/(1−β₁ᵗ)) / (√(V/(1−β₂ᵗ)) + ε)         heavyball: / max(√(V/(1−β₂ᵗ)), ε)
        θ ← θ(1 − ηλ) − η Q_L N' Q_Rᵀ
        L ← β_sL + (1−β_s)GGᵀ ;  R ← β_sR + (1−β_s)GᵀG
        if t ≡ 0 (mod f):  Q_L ← refresh_basis(L, Q_L) ;  Q_R ← refresh_basis(R, Q_R)

    Returns (θ, M, V, L, R, Q_L, Q_R).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    matrix = g.reshape(soap_matrix_shape(param.shape))

    def update_factors(beta: float) -> tuple[Tensor | None, Tensor | None]:
        new_left = None if left is None else beta * left + (1 - beta) * (matrix @ matrix.T)
        new_right = None if right is None else beta * right + (1 - beta) * (matrix.T @ matrix)
        return new_left, new_right

    if step == 1:
        left, right = update_factors(shampoo_beta)
        q_left = None if left is None else eigenbasis(left)
        q_right = None if right is None else eigenbasis(right)
        return param, exp_avg, exp_avg_sq, left, right, q_left, q_right

    t = step - 1
    projected = rotate(matrix, q_left, q_right)
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * (projected * projected).reshape(param.shape)
    root = torch.sqrt(exp_avg_sq.reshape(matrix.shape) / (1 - beta2**t))
    denominator = torch.clamp(root, min=eps) if convention == "heavyball" else root + eps
    first = rotate(exp_avg.reshape(matrix.shape), q_left, q_right)
    direction = rotate_back((first / (1 - beta1**t)) / denominator, q_left, q_right)
    param = param * (1 - lr * weight_decay) - lr * direction.reshape(param.shape)
    left, right = update_factors(shampoo_beta)
    if refreshes(step, precondition_frequency, convention):
        q_left = None if left is None else refresh_basis(left, q_left, convention)
        q_right = None if right is None else refresh_basis(right, q_right, convention)
    return param, exp_avg, exp_avg_sq, left, right, q_left, q_right


_FACTORS = ("left", "right", "q_left", "q_right")


class SOAP(DescentOptimizer):
    """SOAP (N. Vyas, D. Morwani, R. Zhao, I. Shapira, D. Brandfonbrener, L. Janson, S. Kakade,
    "SOAP: Improving and Stabilizing Shampoo using Adam", ICLR 2025, arXiv:2409.11321): Shampoo's
    factors L = E[GGᵀ] and R = E[GᵀG] of each weight matrix G give an eigenbasis (Q_L, Q_R);
    Adam runs in that rotated basis, and the basis is refreshed only every f steps (one power
    iteration + QR), so the expensive work is amortized while Adam's second moment keeps adapting.

        first step: L, R from G ;  Q_L, Q_R = eigh(L), eigh(R)    (θ unchanged)
        G' = Q_Lᵀ G Q_R ;  M ← β₁M + (1−β₁)G ;  V ← β₂V + (1−β₂)G'²
        N' = M̂' / (√V̂ + ε)   with M' = Q_Lᵀ M Q_R and Adam's bias corrections (t = step − 1)
        θ ← θ(1 − ηλ) − η Q_L N' Q_Rᵀ
        L ← β_sL + (1−β_s)GGᵀ ;  R ← β_sR + (1−β_s)GᵀG
        every f-th t:  Q ← QR(L Q) (columns in decreasing diag(QᵀLQ))
            η = 3e-3, β = (0.95, 0.95), β_s = β₂, ε = 1e-8, λ = 0.01, f = 10 (the authors' code)

    Tensors of more than two dimensions are preconditioned as (shape[0], −1); a side larger than
    ``max_precond_dim`` (or of size 1) is left unrotated; vectors take plain Adam (after the same
    skipped first step). The fast path does the matrix work batched: the same-shaped matrices of a
    group are stacked and projected, accumulated and refreshed by single batched calls.

    Peer: ``heavyball.SOAP`` is ``convention="heavyball"`` (with its ``shampoo_beta`` and
    ``precondition_frequency``): ε clamps √V̂ instead of being added, the power iteration runs on
    L + δI (δ a small multiple of L's largest estimated eigenvalue), and the refresh comes one
    step earlier (it counts the initializing call). Its debiased factors differ from L and R by
    a scale only, which no eigenvector sees.

    Example:
        >>> opt = SOAP(model.parameters(), lr=3e-3, precondition_frequency=10)  # doctest: +SKIP
    """

    elementwise = False  # see DescentOptimizer.elementwise
    # the eigenbasis refresh every f steps branches on the step count, and the factor updates
    # are in place on tensors autograd would need: no capturable or differentiable step
    device_steps = False
    supports_differentiable = False
    # the factors and bases of a side that is not preconditioned are not kept (see _init_state)
    state_names = ("exp_avg", "exp_avg_sq", *_FACTORS)
    reference = staticmethod(soap_reference)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10_000,
        *,
        convention: str = "paper",
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate_moments(group)
        if group["shampoo_beta"] is not None:
            validate.unit_interval(group["shampoo_beta"], "shampoo_beta (β_s)")
        validate.positive_int(group["precondition_frequency"], "precondition_frequency")
        validate.positive_int(group["max_precond_dim"], "max_precond_dim")
        group["convention"] = validate.choice(group["convention"], "convention", _CONVENTIONS)
        for param in group["params"]:
            if torch.is_complex(param):
                raise InputError("SOAP does not take complex parameters")

    @staticmethod
    def _shampoo_beta(group: Group) -> float:
        beta = group["shampoo_beta"]
        return group["betas"][1] if beta is None else beta

    def _state_names(self, param: Tensor, group: Group) -> list[str]:
        has_left, has_right = soap_sides(param.shape, group["max_precond_dim"])
        sides = [name for name, present in (("left", has_left), ("right", has_right)) if present]
        return ["exp_avg", "exp_avg_sq", *(key for name in sides for key in (name, "q_" + name))]

    def _init_state(self, param: Tensor, group: Group) -> State:
        state = self.zeros(param, group, ["exp_avg", "exp_avg_sq"])
        sizes = dict(zip(("left", "right"), soap_matrix_shape(param.shape), strict=True))
        dtype = self.state_dtype(param, group)
        for name in self._state_names(param, group)[2:]:  # the factors and their bases
            size = sizes[name.removeprefix("q_")]
            state[name] = torch.zeros(size, size, dtype=dtype, device=param.device)
        return state

    def _reference_keywords(self, group: Group, param: Tensor) -> dict[str, Any]:
        return {"shampoo_beta": self._shampoo_beta(group)}

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        g = effective_grads(params, grads, 0.0, group["maximize"])
        # Tensors of one matrix shape, the same rotated sides (a vector and a 1×n matrix share
        # a shape, not their sides) and one phase (initializing or not) form a batch: their
        # matrix work is one batched call each.
        batches: dict[tuple[int, int, bool, bool, bool], list[int]] = {}
        for i, (param, state, t) in enumerate(zip(params, states, step.all_steps(), strict=True)):
            rows, cols = soap_matrix_shape(param.shape)
            key = (rows, cols, "left" in state, "right" in state, t == 1)
            batches.setdefault(key, []).append(i)
        for (rows, cols, _, _, first), indices in batches.items():
            matrices = torch.stack([g[i].reshape(rows, cols) for i in indices])
            batch_states = [states[i] for i in indices]
            if first:
                self._initialize(group, matrices, batch_states)
            else:
                self._batched_step(
                    group,
                    [params[i] for i in indices],
                    [g[i] for i in indices],
                    matrices,
                    batch_states,
                    step.steps(indices),
                    lr,
                )

    def _accumulate(self, group: Group, matrices: Tensor, states: list[State]) -> None:
        """L ← β_sL + (1−β_s)GGᵀ and R ← β_sR + (1−β_s)GᵀG for the stacked gradients."""
        beta = self._shampoo_beta(group)
        for name, a, b in (("left", matrices, matrices.mT), ("right", matrices.mT, matrices)):
            if name in states[0]:
                factors = torch.stack([state[name] for state in states])
                factors.baddbmm_(a, b, beta=beta, alpha=1 - beta)
                foreach.copy_([state[name] for state in states], list(factors.unbind()))

    def _initialize(self, group: Group, matrices: Tensor, states: list[State]) -> None:
        self._accumulate(group, matrices, states)
        for name in ("left", "right"):
            if name in states[0]:
                bases = eigenbasis(torch.stack([state[name] for state in states]))
                foreach.copy_([state["q_" + name] for state in states], list(bases.unbind()))

    def _batched_step(
        self,
        group: Group,
        params: list[Tensor],
        g: list[Tensor],
        matrices: Tensor,
        states: list[State],
        steps: list[float],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        shape = matrices.shape
        q_left = torch.stack([s["q_left"] for s in states]) if "q_left" in states[0] else None
        q_right = torch.stack([s["q_right"] for s in states]) if "q_right" in states[0] else None
        exp_avg = [s["exp_avg"] for s in states]
        exp_avg_sq = [s["exp_avg_sq"] for s in states]
        projected = rotate(matrices, q_left, q_right)
        foreach.lerp_(exp_avg, g, 1 - beta1)
        foreach.mul_(exp_avg_sq, beta2)
        squared = list((projected * projected).unbind())
        foreach.add_(
            exp_avg_sq,
            [s.reshape(v.shape) for s, v in zip(squared, exp_avg_sq, strict=True)],
            alpha=1 - beta2,
        )
        first = rotate(torch.stack([m.reshape(shape[1:]) for m in exp_avg]), q_left, q_right)
        second = torch.stack([v.reshape(shape[1:]) for v in exp_avg_sq])
        dtype, device = matrices.dtype, matrices.device
        correction1 = torch.tensor(
            [1 - beta1 ** (s - 1) for s in steps], dtype=dtype, device=device
        ).view(-1, 1, 1)
        correction2 = torch.tensor(
            [1 - beta2 ** (s - 1) for s in steps], dtype=dtype, device=device
        ).view(-1, 1, 1)
        root = torch.sqrt(second / correction2)
        if group["convention"] == "heavyball":
            denominator = root.clamp_(min=group["eps"])
        else:
            denominator = root.add_(group["eps"])
        direction = rotate_back((first / correction1).div_(denominator), q_left, q_right)
        if group["weight_decay"] != 0:
            foreach.mul_(params, 1 - lr * group["weight_decay"])
        foreach.add_(
            params,
            [d.reshape(p.shape) for d, p in zip(direction.unbind(), params, strict=True)],
            alpha=-lr,
        )
        self._accumulate(group, matrices, states)
        due = [
            i
            for i, s in enumerate(steps)
            if refreshes(int(s), group["precondition_frequency"], group["convention"])
        ]
        if due:
            chosen = [states[i] for i in due]
            for name in ("left", "right"):
                if name in states[0]:
                    bases = refresh_basis(
                        torch.stack([s[name] for s in chosen]),
                        torch.stack([s["q_" + name] for s in chosen]),
                        group["convention"],
                    )
                    foreach.copy_([s["q_" + name] for s in chosen], list(bases.unbind()))
