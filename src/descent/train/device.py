"""Where and in which precision the Trainer computes.

Devices: ``"auto"`` (the first CUDA GPU, else Apple's MPS, else the CPU), ``"cpu"``, ``"cuda"``,
``"cuda:N"``, ``"mps"``. Precisions, named as PyTorch Lightning names them:

=============  =================  ==========================================================
precision      parameters         forward pass
=============  =================  ==========================================================
"32"           float32            float32
"64"           float64            float64 (the data is cast too)
"bf16-mixed"   float32            autocast to bfloat16 (no loss scaling needed: bf16 has
                                  float32's exponent range)
"16-mixed"     float32            autocast to float16, with a gradient scaler: the loss is
                                  multiplied by S before backward, gradients divided by S
                                  before the step; a step whose gradients overflow is skipped
                                  and S halved (Micikevicius et al., 2018, "Mixed Precision
                                  Training", https://arxiv.org/abs/1710.03740)
=============  =================  ==========================================================
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch

from descent.errors import InputError

PRECISIONS = ("32", "64", "bf16-mixed", "16-mixed")


def resolve_device(spec: str | torch.device, local_rank: int | None = None) -> torch.device:
    """The torch.device for a device spec; under data-parallel training on GPUs, "auto" and
    "cuda" mean this process's GPU (``cuda:LOCAL_RANK``)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise InputError(f"device must be auto, cpu, cuda, cuda:N or mps, got {spec!r}")
    name = spec.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("device 'mps' is not available on this machine; use cpu or auto")
        return torch.device("mps")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InputError(f"device must be auto, cpu, cuda, cuda:N or mps, got {spec!r}")
    if not torch.cuda.is_available():
        raise InputError(
            f"device {spec!r} is not available on this machine (no CUDA GPU); use cpu or auto"
        )
    if index:
        number = int(index)
    else:
        number = local_rank if local_rank is not None else torch.cuda.current_device()
    if number >= torch.cuda.device_count():
        raise InputError(
            f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} "
            "CUDA GPU(s), cuda:0 to cuda:"
            f"{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", number)


def precision_name(value: Any) -> str:
    """One of :data:`PRECISIONS` (32 and 64 may be given as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Precision:
    """The dtype of parameters and data, and the autocast dtype of the forward pass (None: off)."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.name == "64" and self.device.type == "mps":
            raise InputError("precision '64' is not supported on mps (no float64); use 32")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64 if self.name == "64" else torch.float32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16; None otherwise."""
        if self.name != "16-mixed":
            return None
        return torch.amp.GradScaler(self.device.type)


def local_rank() -> int | None:
    """This process's index on its machine when started by torch's launcher, else None."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else None
