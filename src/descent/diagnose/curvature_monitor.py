"""Curvature during training: a Trainer callback that logs λ_max, λ_min, the trace and the
gradient's signal-to-noise ratio to TensorBoard every N updates, ends a run whose training loss
has reached a plateau (if asked), and logs the stall verdict when early stopping or a plateau
ends the run.

The analysis (one every N updates) is built to cost a few training steps, and every figure
comes with its accuracy:

- **Sample**: a fixed, seeded sample of the training set (``examples``, 32 by default), the
  same at every analysis so that successive points are comparable. The figures are the
  sample's: their spread from sample to sample is not in any logged error bar
  (benchmarks/curvature.py measures it against the whole training set). The default is the
  fewest examples whose λ_max and SNR spreads over samples stay within 1.25× of those at 32:
  on the digits CNN (20 samples at three points of a run) 24 and 16 examples spread λ_max
  1.37× and 1.32× as much, so it stays 32 (the table: docs/curvature-monitor.md). One forward
  pass on it serves everything: the gradient's graph for the Hessian-vector products and the
  per-example losses for the noise.
- **λ_max and λ_min**: Rayleigh-Ritz on a small subspace (``products`` Hessian-vector
  products, 3 by default): the previous analysis's two Ritz vectors (a warm start: the extreme
  eigenvectors move little in N updates), the trace's Rademacher probe when the trace is due,
  then the residual of the worse-converged extreme pair (a Davidson step) while the budget
  lasts: by default the eigenvalues take a Davidson step at every other analysis (see
  :func:`descent.diagnose.lanczos.subspace_curvature`). Logged with their residuals
  ``curvature/lambda_max_residual`` and ``…_min_residual``: an eigenvalue of the Hessian lies
  within the residual of the logged value. Ritz values lie inside the spectrum, so the logged
  λ_max is a lower bound of the true one and the logged λ_min an upper bound; the residual
  does not exclude an eigenvalue beyond them (a direction the subspace has not met yet), and
  λ_min, inside the bulk of the spectrum, converges more slowly than the outlying λ_max over
  successive analyses. :func:`descent.diagnose.stall` and
  :func:`descent.diagnose.curvature.eigenvalues` give converged figures on demand. λ_min at
  every ``lambda_min_every``-th analysis (2: with the trace and the noise, by the step; and at
  a cold start): the analyses between leave its warm vector out of the subspace (one product
  less: the warm λ_max vector and a Davidson step), log λ_max alone and keep λ_min's vector
  for the next.
- **Trace**: Hutchinson's estimate deflated by the warm vectors (Hutch++'s idea: their part of
  the trace is exact, the probe estimates the rest, unbiased), with ``curvature/trace_stderr``,
  an estimated upper bound of its standard error that one probe already gives; at every
  ``trace_every``-th analysis (2: those of the steps that are multiples of 2N, decided by the
  step so that a resumed run measures the same).
- **Gradient SNR** at the training batch size: the per-example variance ``tr Σ`` from
  ``signs`` (2) random-sign combinations of the per-example gradients, one backward pass each
  through the same forward graph (:func:`descent.diagnose.noise.signed_noise`), with
  ``curvature/gradient_snr_stderr``; the sample's ‖ḡ‖² less its expected excess over the
  training set's (:func:`descent.diagnose.noise.population_signal2`). A loss that is not the
  mean of per-example losses falls back to group gradients (no error bar). At every
  ``noise_every``-th analysis (2: at the trace's, by the step; and at a monitor's first): the
  analyses between build the gradient's graph alone, without the per-example losses and the
  sign passes, and their eigenvalues are the same bit for bit.

Cost: the defaults alternate a full analysis (one forward-and-double-backward graph on 32
examples with the per-example losses, 3 Hessian-vector products, two sign backward passes) with
a light one (the graph, 2 products). benchmarks/curvature.py measures one analysis in training
steps and the Trainer's cost per 50 updates at one torch thread and at torch's default side by
side; docs/curvature-monitor.md and the README give the figures (10% over plain training the
target).

Where it runs: in a background thread on a snapshot of the weights taken at its step (a copy
of the model made once, its tensors copied in place) when the process's CPUs hold torch's
intra-op threads and one more (``background=None``, the default: :func:`spare_core`; True or
False to force it), so training goes on while the analysis runs on the other core, on one
torch thread (:func:`one_thread`; torch releases the GIL inside its kernels; on a machine
whose cores are all busy with other work it measured slower than the training thread: pass
False there); the figures are logged at the step they describe as soon as the analysis ends
(and at the latest when the run ends or the ``history`` is read). Otherwise (torch's threads
fill the cores, its default) in the training thread, which waits for it, on torch's threads
as the training leaves them: their OpenMP team is still awake from the training step (an idle
worker spin-waits for a few milliseconds before it sleeps), so the analysis's larger products
use both cores, where on one thread the other core only spun (the analysis cost the same
wall-clock time in a one- and a two-thread process, and the two-thread steps are faster).
Analyses run one after another, each from the previous one's vectors, and every analysis
draws from generators of its own, seeded by ``seed`` and the step (one for the curvature's
probes, one for the noise's signs), never from torch's global one: the figures and the
training are the same run after run, in the background or not at one thread (tested); in the
training thread at two threads the figures are those of two threads (float sums in another
order). The warm start is the monitor's only state: :meth:`state_dict` /
:meth:`load_state_dict` carry it, so a checkpoint that saves it resumes the same figures.

A plateau (``stop_on_plateau = P``): the run ends, with the reason "plateau", when the training
loss of the last P epochs is nowhere below ``(1 − plateau_rtol)`` × its best before them (it
stopped falling by more than ``plateau_rtol``, 0.1% by default, relative). The rule reads the
Trainer's epoch history, so a resumed run decides exactly as an uninterrupted one.

Example::

    >>> monitor = CurvatureMonitor(50, data.train, batch_size=50, stop_on_plateau=3)
    >>> trainer = Trainer(model, callbacks=[monitor], logdir="runs/x")
    >>> result = trainer.fit(data.train, data.validation)
    >>> monitor.finish(trainer, result.stopped)   # the verdict, if early stopping or a plateau
"""

from __future__ import annotations

import copy
import os
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose import curvature
from descent.diagnose.lanczos import subspace_curvature
from descent.diagnose.noise import signed_noise
from descent.diagnose.stall import StallVerdict, stall
from descent.errors import InputError
from descent.threads import one_torch_thread

#: The reasons to stop a run after which the verdict is worth computing.
STALL_STOPS = ("early stopping", "plateau")
#: The stall verdict's sample at the end of a run: at least this many training examples.
VERDICT_EXAMPLES = 64


class CurvatureMonitor:
    """A Trainer callback ``(trainer, event, info)``: on every ``every``-th "step" event it logs
    ``curvature/lambda_max``, ``curvature/lambda_min`` (each with its ``…_residual``),
    ``curvature/trace`` (with ``curvature/trace_stderr``) and ``curvature/gradient_snr`` (at
    ``batch_size``, with ``curvature/gradient_snr_stderr``) to TensorBoard in the trainer's
    logdir (in an event file of its own); :meth:`finish` logs the stall
    verdict as text (``stall/verdict``) and the scalars ``stall/…`` when early stopping or a
    plateau ended the run (on the sample widened to ``VERDICT_EXAMPLES`` examples if smaller).

    Args:
        every: analyse every N optimizer updates (N ≥ 1; 0: no periodic analysis, only the
            plateau rule and the verdict).
        train: the training split (``.images``/``.labels``) or a batch ``(inputs, targets)``.
        batch_size: the training's mini-batch size, for the noise figure.
        examples: size of the fixed sample analysed (seeded by ``seed``).
        products: Hessian-vector products per analysis (the two warm vectors, the trace's
            probes when it is due, then Davidson steps); tol: no further step once both
            extreme residuals are below ``tol`` × |λ|_max. probes: Rademacher probes for the
            trace (one suffices for the error bar). trace_every: the trace at every k-th
            analysis (those of the steps that are multiples of k × ``every``; 1: at each);
            the others spend its products on a Davidson step. signs: random-sign probes for
            the gradient noise (≥ 2). noise_every: the noise at every k-th analysis (by the
            step, as the trace; and at the first analysis of a monitor without warm vectors).
            lambda_min_every: λ_min likewise; the analyses between spend ``products − 1``.
        stop_on_plateau: end the run after this many epochs without a relative improvement of
            the training loss by ``plateau_rtol`` (None: never).
        background: analyse in a background thread on a snapshot of the weights, on one torch
            thread (False: in the training thread, on torch's threads); None (the default):
            when torch's threads leave a CPU core free (see the module's docstring).
    """

    def __init__(
        self,
        every: int,
        train: Any,
        *,
        batch_size: int | None = None,
        examples: int = 32,
        products: int = 3,
        tol: float = 1e-2,
        probes: int = 1,
        trace_every: int = 2,
        signs: int = 2,
        noise_every: int = 2,
        lambda_min_every: int = 2,
        seed: int = 0,
        stop_on_plateau: int | None = None,
        plateau_rtol: float = 1e-3,
        background: bool | None = None,
    ) -> None:
        self.every = validate.nonnegative_int(every, "curvature_every")
        self.examples = validate.positive_int(examples, "examples")
        self.products = validate.positive_int(products, "products")
        self.tol = validate.positive(tol, "tol")
        self.probes = validate.positive_int(probes, "probes")
        self.trace_every = validate.positive_int(trace_every, "trace_every")
        self.noise_every = validate.positive_int(noise_every, "noise_every")
        self.lambda_min_every = validate.positive_int(lambda_min_every, "lambda_min_every")
        self.signs = validate.positive_int(signs, "signs")
        if self.signs < 2:
            raise InputError(f"signs must be at least 2 (for an error bar), got {self.signs}")
        self.stop_on_plateau = (
            None
            if stop_on_plateau is None
            else validate.positive_int(stop_on_plateau, "stop_on_plateau")
        )
        self.plateau_rtol = validate.unit_interval(plateau_rtol, "plateau_rtol")
        self.background = (
            validate.flag(background, "background") if background is not None else spare_core()
        )
        self.batch_size = batch_size
        self.seed = seed
        inputs, targets = (train.images, train.labels) if hasattr(train, "images") else tuple(train)
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(inputs), generator=generator)
        chosen = order[: self.examples]
        self.sample: tuple[Tensor, Tensor] = (inputs[chosen], targets[chosen])
        # The verdict, computed once at the end, on a sample at least as large as before the
        # analyses' default shrank; the analyses' examples come first in it.
        wider = order[: max(self.examples, VERDICT_EXAMPLES)]
        self.verdict_sample: tuple[Tensor, Tensor] = (inputs[wider], targets[wider])
        self.population = len(inputs)  # mini-batches come from the whole training set
        self.verdict: StallVerdict | None = None
        self._history: list[dict[str, float]] = []
        self._writer: Any = None
        self._finished = False
        self._snapshot: nn.Module | None = None
        self._job: _Job | None = None
        self._warm: tuple[Tensor, ...] = ()

    # -- the callback --------------------------------------------------------------------------

    def __call__(self, trainer: Any, event: str, info: dict[str, Any]) -> None:
        if event == "step":
            if self._job is not None and self._job.done.is_set():
                self._collect(trainer)
            step = int(info["step"])
            if self.every and step % self.every == 0:
                if self.background:
                    self._start(trainer, step)
                else:
                    self.measure(trainer, step)
        elif event == "epoch":
            if self.stop_on_plateau is not None and self.plateau(trainer.state.history):
                trainer.request_stop("plateau")
        elif event in ("end", "fit_end") and "stopped" in info:
            self.finish(trainer, str(info["stopped"]))

    @property
    def history(self) -> list[dict[str, float]]:
        """``{"step": …, "curvature/…": …}`` of every analysis so far (waits for a running
        one)."""
        self._collect(None)
        return self._history

    def plateau(self, history: list[dict[str, Any]]) -> bool:
        """Whether the training losses of the epochs in ``history`` (the Trainer's flat records)
        end in a plateau: the last ``stop_on_plateau`` of them all above
        ``(1 − plateau_rtol)`` × the best before them."""
        patience = self.stop_on_plateau
        losses = [float(record["train_loss"]) for record in history]
        if patience is None or len(losses) <= patience:
            return False
        best_before = min(losses[:-patience])
        return min(losses[-patience:]) > best_before - self.plateau_rtol * abs(best_before)

    def measure(self, trainer: Any, step: int) -> dict[str, float]:
        """Analyse the current weights on the sample (in this thread) and log the figures at
        ``step``."""
        figures = self._analyse(trainer.model, trainer.loss, step)
        self._record(trainer, step, figures)
        return figures

    def finish(self, trainer: Any, stopped: str) -> StallVerdict | None:
        """After the run: waits for a running analysis; the stall verdict when ``stopped`` is
        early stopping or a plateau, logged to TensorBoard as text and scalars; closes the
        writer. Safe to call twice."""
        self._collect(trainer)
        if self._finished:
            return self.verdict
        self._finished = True
        if any(reason in stopped for reason in STALL_STOPS):
            model = trainer.model
            self.verdict = stall(
                model,
                trainer.loss,
                self._data(model, self.verdict_sample),
                batch_size=self.batch_size,
                seed=self.seed,
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

    # -- the analysis --------------------------------------------------------------------------

    def _analyse(
        self, model: nn.Module, loss: Any, step: int, *, background: bool = False
    ) -> dict[str, float]:
        """One forward pass on the sample serves everything: the gradient's graph (for the
        Hessian-vector products) and the per-example losses (for the noise). The subspace
        starts from the previous analysis's Ritz vectors. In the training thread on torch's
        threads, in a ``background`` thread on one (see :func:`one_thread`)."""
        curvature_generator, noise_generator = self._generators(step)
        # The step, not a count of analyses, decides: a resumed run measures the same figures.
        period = step // max(self.every, 1)
        trace_due = period % self.trace_every == 0
        # The noise likewise (and at a monitor's first analysis, which shows every figure).
        noise_due = not self._warm or period % self.noise_every == 0
        # λ_min likewise: the analyses between leave its warm vector (and its product) out and
        # keep it for the next one.
        minimum_due = len(self._warm) < 2 or period % self.lambda_min_every == 0
        warm = self._warm if minimum_due else self._warm[:1]
        budget = self.products if minimum_due else max(self.products - 1, 1)
        threads = one_thread() if background else nullcontext()
        with threads, curvature.evaluation_mode(model):
            objective = curvature.Objective(model, loss, self._data(model))
            # Without the noise, the products build the gradient's graph alone (no
            # per-example losses).
            prepared = objective.gradient_with_example_losses() if noise_due else None
            estimate = subspace_curvature(
                objective,
                warm=warm,
                probes=self.probes if trace_due else 0,
                max_products=budget,
                tol=self.tol,
                generator=curvature_generator,
            )
            noise = None
            if prepared is not None:
                noise = signed_noise(
                    objective,
                    *prepared,
                    batch_size=self.batch_size or 1,
                    probes=self.signs,
                    population=self.population,
                    generator=noise_generator,
                )
            elif noise_due:  # a loss that is not a mean of per-example losses: group gradients
                noise = curvature.gradient_noise(
                    model,
                    loss,
                    None,
                    batch_size=self.batch_size,
                    method="groups",
                    groups=min(8, len(self.sample[0])),
                    population=self.population,
                    seed=self.seed + step,
                    objective=objective,
                )
        figures = {
            "curvature/lambda_max": estimate.lambda_max,
            "curvature/lambda_max_residual": estimate.residual_max,
        }
        if minimum_due:
            self._warm = (estimate.vector_max, estimate.vector_min)
            figures["curvature/lambda_min"] = estimate.lambda_min
            figures["curvature/lambda_min_residual"] = estimate.residual_min
        else:
            self._warm = (estimate.vector_max, self._warm[1])
        if estimate.trace is not None and estimate.trace_stderr is not None:
            figures["curvature/trace"] = estimate.trace
            figures["curvature/trace_stderr"] = estimate.trace_stderr
        if noise is not None:
            figures["curvature/gradient_snr"] = noise.snr
            if noise.snr_stderr is not None:
                figures["curvature/gradient_snr_stderr"] = noise.snr_stderr
        return figures

    def _generators(self, step: int) -> tuple[torch.Generator, torch.Generator]:
        """The curvature's and the noise's generators at ``step``: seeded by ``seed`` and the
        step only (a resumed run draws the same), one for each part so that neither's draws
        depend on when the other runs."""
        # (SeedSequence takes non-negative entries: a negative seed as its 64-bit pattern)
        entropy = [self.seed % 2**64, step]
        curvature_seed, noise_seed = np.random.SeedSequence(entropy).generate_state(2)
        return (
            torch.Generator().manual_seed(int(curvature_seed)),
            torch.Generator().manual_seed(int(noise_seed)),
        )

    def state_dict(self) -> dict[str, Any]:
        """The warm-start vectors: a checkpoint that saves them (and :meth:`load_state_dict` on
        resume) makes a resumed run log exactly the figures of an uninterrupted one. Waits for a
        running analysis, whose vectors are the state."""
        self._collect(None)
        return {"warm": [vector.detach().cpu() for vector in self._warm]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._warm = tuple(state.get("warm", ()))

    def _start(self, trainer: Any, step: int) -> None:
        """The analysis of ``step`` in a background thread, on a snapshot of the weights."""
        self._collect(trainer)  # the snapshot is free again once the previous analysis ended
        model = trainer.model
        self._open(trainer)  # a writer for figures collected later without the trainer
        if self._snapshot is None:
            try:
                self._snapshot = copy.deepcopy(model)
            except Exception:  # a model that cannot be copied: analyse in this thread
                self.background = False
                self.measure(trainer, step)
                return
        with torch.no_grad():
            for target, source in zip(
                self._snapshot.state_dict(keep_vars=True).values(),
                model.state_dict(keep_vars=True).values(),
                strict=True,
            ):
                target.copy_(source)
        self._job = _Job(self._snapshot, trainer.loss, step, self._analyse)

    def _collect(self, trainer: Any) -> None:
        """Wait for the running analysis, if any, and log it (raising its error, if any)."""
        job, self._job = self._job, None
        if job is None:
            return
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.figures is not None
        self._record(trainer, job.step, job.figures)

    def _record(self, trainer: Any, step: int, figures: dict[str, float]) -> None:
        self._history.append({"step": step, **figures})
        # Always our own event file: an analysis collected after the Trainer closed its writer
        # (the last one, at the end) would otherwise land in a second file, and TensorBoard
        # reading the two would see a step go back. No flush here (it waits for the disk): the
        # writer flushes in the background and at finish.
        writer = self._open(trainer) if trainer is not None else self._writer
        if writer is not None:
            for tag, value in figures.items():
                writer.add_scalar(tag, value, step)

    # -- helpers -------------------------------------------------------------------------------

    def _data(
        self, model: nn.Module, sample: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        parameter = next(model.parameters())
        inputs, targets = sample or self.sample
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


#: the background analysis's thread setting (descent.threads)
one_thread = one_torch_thread


def spare_core() -> bool:
    """Whether the CPUs this process may use hold torch's intra-op threads and one more: the
    training's and a background analysis's, which runs on one (:func:`one_thread`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return torch.get_num_threads() + 1 <= cores


class _Job:
    """One analysis running in a daemon thread; ``done`` is set when it ends."""

    def __init__(self, model: nn.Module, loss: Any, step: int, analyse: Any) -> None:
        self.step = step
        self.figures: dict[str, float] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def work() -> None:
            try:
                self.figures = analyse(model, loss, step, background=True)
            except BaseException as error:  # handed to the training thread at collection
                self.error = error
            finally:
                self.done.set()

        threading.Thread(target=work, name=f"curvature-{step}", daemon=True).start()


__all__ = ["STALL_STOPS", "CurvatureMonitor"]
