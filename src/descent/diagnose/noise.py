"""The gradient's noise: per-example gradients (``torch.func.vmap`` of ``torch.func.grad``), the
spread between the gradients of a random partition of the examples into groups, or the spread
between given batches; and the signal-to-noise ratio of a mini-batch gradient (McCandlish et al.,
"An Empirical Model of Large-Batch Training", 2018).

Groups: the N examples, in a seeded random order, make G groups of b = ⌊N/G⌋ (the rest left
out). The total sum of squares splits into within and between groups,
``Σ_i ‖g_i − ḡ‖² = Σ_g Σ_{i∈g} ‖g_i − ḡ_g‖² + b Σ_g ‖ḡ_g − ḡ‖²``, and over random partitions
the between part has expectation ``(G − 1)/(N − 1) · Σ_i ‖g_i − ḡ‖²`` (the randomization
argument of the one-way analysis of variance), so ``S² = b/(G − 1) · Σ_g ‖ḡ_g − ḡ‖²`` is an
unbiased estimate of the per-example variance ``tr Σ = Σ_i ‖g_i − ḡ‖²/(N − 1)`` from G gradients
instead of N (with G − 1 degrees of freedom instead of N − 1: noisier, much cheaper). With
b = 1 it is the per-example value exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.hessian import LossFn, Objective, evaluation_mode
from descent.errors import InputError

# -- gradient noise ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientNoise:
    """The full gradient against the noise of a mini-batch gradient.

    Attributes:
        gradient_norm: ‖ḡ‖, the gradient of the average loss over the population the data is
            drawn from (``population``; by default the data itself): the data's own ‖ḡ_n‖²
            less its expected excess (:func:`population_signal2`).
        noise: √E‖g_B − ḡ‖², the typical size of a mini-batch gradient's error at ``batch_size``.
        snr: gradient_norm / noise (∞ without noise).
        per_example_variance: tr Σ, the summed variance of one example's gradient (None for the
            batch-to-batch method; estimated from the groups for "groups").
        noise_scale: tr Σ / ‖ḡ‖², McCandlish et al.'s critical batch size (None likewise).
        method: "per-example" (torch.func.vmap), "groups" (a random partition into groups),
            "batches" (variance between the given batches) or "signs" (random-sign
            combinations of the per-example gradients, :func:`signed_noise`).
        snr_stderr: the standard error of ``snr`` where the method estimates it ("signs").
    """

    gradient_norm: float
    noise: float
    batch_size: int
    snr: float
    per_example_variance: float | None
    noise_scale: float | None
    method: str
    examples: int
    snr_stderr: float | None = None


def gradient_noise(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    batch_size: int | None = None,
    method: str = "auto",
    chunk: int = 256,
    groups: int = 8,
    population: int | None = None,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    objective: Objective | None = None,
) -> GradientNoise:
    """The gradient's signal-to-noise ratio at a mini-batch size.

    ``method="per-example"`` computes every example's gradient (vmap, ``chunk`` examples at a
    time, nothing stored per example) and reports the noise of a batch of ``batch_size`` (default
    1) drawn without replacement; ``"batches"`` uses the spread of the given batches' gradients
    around their weighted mean (at least two batches; the noise is that of a batch of their mean
    size); ``"groups"`` estimates tr Σ from ``groups`` gradients of a seeded random partition
    (see the module's docstring: G backward passes instead of N per-example gradients).
    ``"auto"``: per-example, falling back to batches when the model cannot be vmapped.

    The batch is drawn without replacement from ``population`` examples (default: the data's
    own; pass the training set's size when ``data`` is a sample of it): the noise is
    ``tr Σ / B · (P − B)/P``.
    """
    method = validate.choice(method, "method", ("auto", "per-example", "groups", "batches"))
    chunk = validate.positive_int(chunk, "chunk")
    groups = validate.positive_int(groups, "groups")
    if batch_size is not None:
        batch_size = validate.positive_int(batch_size, "batch_size")
    if population is not None:
        population = validate.positive_int(population, "population")
    with evaluation_mode(model):
        objective = objective or Objective(model, loss, data, dtype=dtype)
        if method == "groups":
            return _group_noise(objective, batch_size or 1, groups, population, seed)
        if method in ("auto", "per-example"):
            try:
                return _per_example_noise(objective, batch_size or 1, chunk, population)
            except InputError:
                raise
            except Exception as error:  # vmap cannot run this model: say so or fall back
                if method == "per-example" or len(objective.batches) < 2:
                    raise InputError(
                        f"per-example gradients failed for this model ({error}); pass several "
                        "batches and method='batches'"
                    ) from None
        return _batch_noise(objective)


def _per_example_noise(
    objective: Objective, batch_size: int, chunk: int, population: int | None
) -> GradientNoise:
    from torch.func import functional_call, grad, vmap

    model, loss_fn = objective.model, objective.loss_fn
    params = {name: p.detach() for name, p in zip(objective.names, objective.params, strict=True)}

    def example_loss(parameters: dict[str, Tensor], inputs: Tensor, target: Tensor) -> Tensor:
        state = {**objective.fixed, **parameters}
        output = functional_call(model, state, (inputs.unsqueeze(0),))
        return loss_fn(output, target.unsqueeze(0)).reshape(())

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    total = torch.zeros(objective.dimension, dtype=torch.float64)
    squares = 0.0
    count = 0
    for inputs, targets in objective.batches:
        for start in range(0, len(inputs), chunk):
            grads = per_example(
                params, inputs[start : start + chunk], targets[start : start + chunk]
            )
            flat = torch.cat(
                [grads[name].reshape(len(grads[name]), -1) for name in objective.names], 1
            )
            flat = flat.to(torch.float64)
            total += flat.sum(dim=0)
            squares += float((flat * flat).sum())
            count += len(flat)
    mean = total / count
    mean_norm2 = float(mean @ mean)
    variance = max(squares - count * mean_norm2, 0.0) / max(count - 1, 1)
    mean_norm2, _ = population_signal2(mean_norm2, variance, count, population)
    size, noise2 = _batch_noise2(variance, batch_size, population or count)
    return _noise_result(mean_norm2, noise2, size, variance, "per-example", count)


def signed_noise(
    objective: Objective,
    gradient: Tensor,
    example_losses: Tensor,
    *,
    batch_size: int,
    probes: int,
    population: int | None,
    generator: torch.Generator,
) -> GradientNoise:
    """The noise from random-sign combinations of the per-example gradients, one backward pass
    each through the kept forward graph (:meth:`Objective.gradient_with_example_losses`).

    For Rademacher signs ``c`` (N of them), ``u = ∇ Σ_i c_i ℓ_i − (Σ_i c_i) ḡ = Σ_i c_i (g_i − ḡ)``
    and ``E‖u‖² = Σ_i ‖g_i − ḡ‖²`` (the cross terms vanish: ``E c_i c_j = δ_ij``), so
    ``‖u‖² / (N − 1)`` is an unbiased estimate of ``tr Σ`` from one backward pass instead of N
    per-example gradients: Hutchinson's estimator (Hutchinson 1990) applied to the Gram matrix
    of the centred per-example gradients. ``probes`` (≥ 2) sign vectors give the mean and its
    standard error; the SNR's error bar follows by the delta method (SNR ∝ (tr Σ)^(−1/2), so its
    relative error is half that of tr Σ)."""
    if probes < 2:
        raise InputError(f"the signed noise estimate needs at least 2 probes, got {probes}")
    count = len(example_losses)
    if count < 2:
        raise InputError(f"the gradient noise needs at least 2 examples, got {count}")
    mean_gradient = gradient.to(torch.float64)  # once: each probe subtracts it
    samples = []
    for _ in range(probes):
        signs = torch.randint(0, 2, (count,), generator=generator).to(torch.float64) * 2 - 1
        combined = objective.example_gradient_sum(example_losses, signs).to(torch.float64)
        deviation = combined.sub_(mean_gradient, alpha=float(signs.sum()))
        samples.append(float(deviation @ deviation) / (count - 1))
    values = torch.tensor(samples, dtype=torch.float64)
    variance = float(values.mean())
    variance_stderr = float(values.std(unbiased=True)) / math.sqrt(probes)
    sample_norm2 = float(mean_gradient @ mean_gradient)
    mean_norm2, excess = population_signal2(sample_norm2, variance, count, population)
    size, noise2 = _batch_noise2(variance, batch_size, population or count)
    result = _noise_result(mean_norm2, noise2, size, variance, "signs", count)
    relative = variance_stderr / variance if variance > 0 else math.inf
    if mean_norm2 > 0:
        # SNR² = (m − a·V)/(b·V): d ln SNR / d ln V = −(1 + a·V/(m − a·V))/2 (delta method).
        stderr = result.snr * relative / 2 * (1 + excess / mean_norm2)
    else:  # the signal is within the noise of its own estimate: the size of that uncertainty
        stderr = math.sqrt(excess * relative) / result.noise if result.noise > 0 else math.inf
    return dataclasses.replace(result, snr_stderr=stderr)


def population_signal2(
    sample_norm2: float, variance: float, count: int, population: int | None
) -> tuple[float, float]:
    """An unbiased ‖ḡ‖² of the population from the squared norm of a sample's mean gradient:
    ``(max(‖ḡ_n‖² − e, 0), e)`` with ``e = tr Σ / n · (P − n)/P``.

    A sample of n examples drawn without replacement from P has ``E‖ḡ_n‖² = ‖ḡ‖² + tr Σ/n ·
    (P − n)/P`` (its mean's variance), so the sample's own norm overstates the signal, by a
    lot when the SNR is near 1 (on a 64-example sample of the digits CNN it read the SNR 50%
    high). The same correction as McCandlish et al. 2018 (appendix A) for their unbiased
    ``|G|²``; with ``tr Σ`` itself unbiased, so is the difference (clamped at 0). No excess
    when the sample is the population (``population`` None or n)."""
    _, excess = _batch_noise2(variance, count, population or count)
    return max(sample_norm2 - excess, 0.0), excess


def _batch_noise2(variance: float, batch_size: int, population: int) -> tuple[int, float]:
    """E‖g_B − ḡ‖² of a batch of B drawn without replacement from P examples of per-example
    variance tr Σ: tr Σ / B · (P − B)/P (B capped at P)."""
    size = min(batch_size, population)
    return size, variance / size * (population - size) / population


def _group_noise(
    objective: Objective, batch_size: int, groups: int, population: int | None, seed: int
) -> GradientNoise:
    inputs = torch.cat([batch[0] for batch in objective.batches])
    targets = torch.cat([batch[1] for batch in objective.batches])
    count = len(inputs)
    if groups < 2 or count < groups:
        raise InputError(
            f"the group estimate needs 2 ≤ groups ≤ examples, got {groups} groups of {count}"
        )
    size = count // groups
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    order = order[: groups * size].to(inputs.device).view(groups, size)
    try:
        stacked = _group_gradients_vmapped(objective, inputs[order], targets[order])
    except InputError:
        raise
    except Exception:  # an op without a batching rule: one group at a time
        stacked = _group_gradients_looped(objective, inputs, targets, order)
    mean = stacked.mean(dim=0)
    variance = size / (groups - 1) * float(((stacked - mean) ** 2).sum())
    used = groups * size
    mean_norm2, _ = population_signal2(float(mean @ mean), variance, used, population)
    batch, noise2 = _batch_noise2(variance, batch_size, population or used)
    return _noise_result(mean_norm2, noise2, batch, variance, "groups", used)


def _group_gradients_vmapped(objective: Objective, inputs: Tensor, targets: Tensor) -> Tensor:
    """The G group gradients (G × d, float64) in one vmapped call over ``inputs`` of shape
    (G, b, …): about 3× faster than a loop of G backward passes on the digits CNN."""
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in zip(objective.names, objective.params, strict=True)}

    def group_loss(parameters: dict[str, Tensor], group: Tensor, labels: Tensor) -> Tensor:
        output = functional_call(objective.model, {**objective.fixed, **parameters}, (group,))
        return objective.loss_fn(output, labels).reshape(())

    grads = vmap(grad(group_loss), in_dims=(None, 0, 0))(params, inputs, targets)
    return torch.cat([grads[name].reshape(len(inputs), -1) for name in objective.names], dim=1).to(
        torch.float64
    )


def _group_gradients_looped(
    objective: Objective, inputs: Tensor, targets: Tensor, order: Tensor
) -> Tensor:
    state = {**objective.fixed, **dict(zip(objective.names, objective.params, strict=True))}
    means = []
    for group in order:
        output = torch.func.functional_call(objective.model, state, (inputs[group],))
        value = objective.loss_fn(output, targets[group]).reshape(())
        grads = torch.autograd.grad(value, objective.params, allow_unused=True)
        means.append(objective._flat(grads).to(torch.float64))
    return torch.stack(means)


def _batch_noise(objective: Objective) -> GradientNoise:
    if len(objective.batches) < 2:
        raise InputError("the batch-to-batch gradient noise needs at least two batches, got one")
    gradients = []
    for index in range(len(objective.batches)):
        value = objective.batch_loss(index)
        gradients.append(
            objective._flat(torch.autograd.grad(value, objective.params, allow_unused=True))
        )
    stacked = torch.stack(gradients).to(torch.float64)
    weights = torch.tensor(objective.weights, dtype=torch.float64)
    mean = weights @ stacked
    noise2 = float(((stacked - mean) ** 2).sum(dim=1).mean())
    size = round(objective.examples / len(objective.batches))
    return _noise_result(float(mean @ mean), noise2, size, None, "batches", objective.examples)


def _noise_result(
    mean_norm2: float, noise2: float, size: int, variance: float | None, method: str, count: int
) -> GradientNoise:
    norm, noise = math.sqrt(mean_norm2), math.sqrt(max(noise2, 0.0))
    snr = norm / noise if noise > 0 else math.inf
    scale = variance / mean_norm2 if variance is not None and mean_norm2 > 0 else None
    return GradientNoise(norm, noise, size, snr, variance, scale, method, count)
