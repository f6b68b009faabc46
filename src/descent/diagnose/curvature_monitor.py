"""Curvature during training: a Trainer callback that logs λ_max, λ_min, the trace and the
gradient's signal-to-noise ratio to TensorBoard every N updates, and the stall verdict when early
stopping ends the run.

The analysis runs on a fixed, seeded sample of the training set (``examples`` of them) so that
successive points are comparable, with small budgets (a dozen Lanczos steps, one batched round of
Hutchinson probes): the curve's trend is the point, not six digits. :func:`descent.diagnose.stall`
and :mod:`descent.diagnose.curvature` give the exact figures on demand.

Example::

    >>> monitor = CurvatureMonitor(every=50, train=data.train, batch_size=50)
    >>> Trainer(model, callbacks=[monitor], logdir="runs/x").fit(data.train, data.validation)
    >>> monitor.finish(trainer, result.stopped)   # the verdict, logged if early stopping ended it
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from descent import validate
from descent.diagnose import curvature
from descent.diagnose.stall import StallVerdict, stall

#: The reasons to stop a run after which the verdict is worth computing.
STALL_STOPS = ("early stopping", "plateau")


class CurvatureMonitor:
    """A Trainer callback ``(trainer, event, info)``: on every ``every``-th "step" event it logs
    ``curvature/lambda_max``, ``curvature/lambda_min``, ``curvature/trace`` (and
    ``curvature/trace_stderr``) and ``curvature/gradient_snr`` (at ``batch_size``) to TensorBoard
    in the trainer's logdir; :meth:`finish` logs the stall verdict as text (``stall/verdict``)
    and the scalars ``stall/…`` when the run stopped early.

    Args:
        every: log every N optimizer updates (N ≥ 1).
        train: the training split (``.images``/``.labels``) or a batch ``(inputs, targets)``.
        batch_size: the training's mini-batch size, for the noise figure.
        examples: size of the fixed sample analysed (seeded by ``seed``).
        lanczos_steps, probes: the analysis's budgets.
    """

    def __init__(
        self,
        every: int,
        train: Any,
        *,
        batch_size: int | None = None,
        examples: int = 128,
        lanczos_steps: int = 12,
        probes: int = 8,
        seed: int = 0,
    ) -> None:
        self.every = validate.positive_int(every, "curvature_every")
        self.examples = validate.positive_int(examples, "examples")
        self.lanczos_steps = validate.positive_int(lanczos_steps, "lanczos_steps")
        self.probes = validate.positive_int(probes, "probes")
        self.batch_size = batch_size
        self.seed = seed
        inputs, targets = (train.images, train.labels) if hasattr(train, "images") else tuple(train)
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(inputs), generator=generator)[: self.examples]
        self.sample: tuple[Tensor, Tensor] = (inputs[chosen], targets[chosen])
        self.history: list[dict[str, float]] = []
        self.verdict: StallVerdict | None = None
        self._writer: Any = None
        self._finished = False

    # -- the callback --------------------------------------------------------------------------

    def __call__(self, trainer: Any, event: str, info: dict[str, Any]) -> None:
        if event == "step" and int(info["step"]) % self.every == 0:
            self.measure(trainer, int(info["step"]))
        elif event in ("end", "fit_end") and "stopped" in info:
            self.finish(trainer, str(info["stopped"]))

    def measure(self, trainer: Any, step: int) -> dict[str, float]:
        """Analyse the current weights on the sample and log the figures at ``step``."""
        model, loss = trainer.model, trainer.loss
        with curvature.evaluation_mode(model):
            objective = curvature.Objective(model, loss, self._data(model))
            spectrum = curvature.eigenvalues(
                model,
                loss,
                None,
                tol=1e-2,
                max_iterations=self.lanczos_steps,
                seed=self.seed,
                objective=objective,
            )
            estimate = curvature.trace(
                model,
                loss,
                None,
                rtol=1.0,
                min_probes=self.probes,
                max_probes=self.probes,
                probes_per_round=self.probes,
                seed=self.seed + step,
                objective=objective,
            )
            noise = curvature.gradient_noise(
                model, loss, None, batch_size=self.batch_size, objective=objective
            )
        figures = {
            "curvature/lambda_max": spectrum.lambda_max,
            "curvature/lambda_min": spectrum.lambda_min,
            "curvature/trace": estimate.value,
            "curvature/trace_stderr": estimate.stderr,
            "curvature/gradient_snr": noise.snr,
        }
        self.history.append({"step": step, **figures})
        writer = self._open(trainer)
        if writer is not None:
            for tag, value in figures.items():
                writer.add_scalar(tag, value, step)
            writer.flush()
        return figures

    def finish(self, trainer: Any, stopped: str) -> StallVerdict | None:
        """After the run: the stall verdict when ``stopped`` is early stopping (or a plateau),
        logged to TensorBoard as text and scalars; closes the writer. Safe to call twice."""
        if self._finished:
            return self.verdict
        self._finished = True
        if any(reason in stopped for reason in STALL_STOPS):
            model = trainer.model
            self.verdict = stall(
                model, trainer.loss, self._data(model), batch_size=self.batch_size, seed=self.seed
            )
            writer = self._open(trainer)
            if writer is not None:
                step = int(getattr(getattr(trainer, "state", None), "step", 0))
                text = str(self.verdict).replace("\n", "  \n")  # Markdown line breaks
                writer.add_text("stall/verdict", text, step)
                for name, value in self.verdict.figures().items():
                    writer.add_scalar(f"stall/{name}", value, step)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.verdict

    # -- helpers -------------------------------------------------------------------------------

    def _data(self, model: torch.nn.Module) -> tuple[Tensor, Tensor]:
        parameter = next(model.parameters())
        inputs, targets = self.sample
        inputs = inputs.to(parameter.device)
        if inputs.is_floating_point():
            inputs = inputs.to(parameter.dtype)
        return inputs, targets.to(parameter.device)

    def _open(self, trainer: Any) -> Any:
        logdir = getattr(trainer, "logdir", None)
        if self._writer is None and logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(logdir)), filename_suffix=".curvature")
        return self._writer


__all__ = ["STALL_STOPS", "CurvatureMonitor"]
