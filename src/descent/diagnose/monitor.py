"""The initialization report inside training: a Trainer callback.

At the first step it writes the report of the untrained model to TensorBoard (a text summary
``diagnose/initialization`` and the ``diagnose/…`` scalars of :meth:`InitReport.scalars` at step
0); with ``every = N`` it records, on every N-th step's own training batch, each layer's
activation std, dead fraction (ReLU family) and saturated fraction (bounded activations) as
``diagnose/train/{std,dead,saturated}/<layer>``, so dying ReLUs show up as they happen.

Between those steps no hook is installed: the hooks are added after step k·N − 1 and removed
after step k·N, so the steps in between cost nothing.

Example::

    >>> monitor = InitDiagnosis(model, images[:256], labels[:256], every=50)
    >>> Trainer(model, logdir="runs/x", callbacks=[monitor]).fit(train)
    >>> monitor.report.verdict, monitor.history[-1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from descent import validate
from descent.diagnose.init import InitReport, init_report
from descent.diagnose.init_hooks import _read_back, _Recorder

#: Examples of the training set the initial report (and LSUV in a run) looks at.
DIAGNOSIS_BATCH = 256


def _writer(trainer: Any) -> Any:
    """The Trainer's open TensorBoard writer, if it has one."""
    return getattr(trainer, "writer", None)


class InitDiagnosis:
    """A Trainer callback (``callbacks(trainer, event, info)``): the initialization report at
    step 0, and per-layer activation statistics every ``every`` steps (0: only the report).

    The report is computed when the callback is made, before any update; ``history`` holds
    ``(step, {name: value})`` of every monitored step, also without a log folder.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor | None = None,
        *,
        every: int = 0,
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        self.every = validate.nonnegative_int(every, "diagnose every")
        self.model = model
        self.report: InitReport = init_report(model, inputs, targets, loss)
        self.history: list[tuple[int, dict[str, float]]] = []
        self._recorder: _Recorder | None = None
        self._started = False
        if self.every:
            self._arm()

    def __call__(self, trainer: Any, event: str, info: dict[str, Any]) -> None:
        if event != "step":
            return
        step = int(info["step"])
        writer = _writer(trainer)
        if not self._started:
            self._started = True
            if step == 0 and writer is not None:  # a resumed run has it already
                writer.add_text("diagnose/initialization", self.report.to_markdown(), 0)
                for tag, value in self.report.scalars("diagnose").items():
                    writer.add_scalar(tag, value, 0)
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            recorder.remove()
            if step % self.every == 0 and recorder.records:
                figures = _figures(recorder)
                self.history.append((step, figures))
                if writer is not None:
                    for tag, value in figures.items():
                        writer.add_scalar(f"diagnose/train/{tag}", value, step)
        if self.every and (step + 1) % self.every == 0:
            self._arm()

    def _arm(self) -> None:
        """Hooks for the next training forward only (evaluation forwards are ignored)."""
        self._recorder = _Recorder(self.model, training_only=True)

    def close(self) -> None:
        """Remove any hook still installed (after training ends between two monitored steps)."""
        if self._recorder is not None:
            self._recorder.remove()
            self._recorder = None


def _figures(recorder: _Recorder) -> dict[str, float]:
    """The monitored figures of each layer, read back from the device together."""
    tags, tensors = [], []
    for record in recorder.records:
        kinds = (("std", record.std), ("dead", record.dead), ("saturated", record.saturated))
        for kind, value in kinds:
            if value is not None:
                tags.append(f"{kind}/{record.name}")
                tensors.append(value)
    return dict(zip(tags, _read_back(tensors), strict=True))  # type: ignore[arg-type]


__all__ = ["DIAGNOSIS_BATCH", "InitDiagnosis"]
