"""The shell every descent update rule shares.

A rule is a :class:`torch.optim.Optimizer` whose learning rate may be a schedule (a callable of the
0-based update number, whose position lives in ``group["step"]``), and which runs either its pure
reference step (one tensor at a time, the formula line by line: ``impl="reference"``) or its fast
path (the default). The formulas and the peers' conventions are in docs/optimizers.md.

Writing a rule (subclass :class:`DescentOptimizer`)
---------------------------------------------------
- ``__init__``: the rule's hyperparameters as plain keyword arguments (Python reports a misspelt
  one), then ``**options: Unpack[RuleOptions]``; first thing,
  ``super().__init__(params, hyperparameters(locals()), **options)``.
  The options every rule shares (``maximize``, ``impl``, ``state_dtype``, ``stochastic_rounding``
  and torch's ``foreach``, ``fused``, ``capturable``, ``differentiable``) and their defaults live
  in :data:`OPTIONS`; the base checks them and shows them in the rule's signature.
- ``flags``: the names of the rule's boolean hyperparameters (the base checks them).
- ``_validate(group)``: check the group's other hyperparameters with :mod:`descent.validate` (call
  ``super()._validate(group)`` first); it may store normalized values back into the group (as
  :func:`validate_betas` does for ``betas``).
- ``state_names``: the per-element state tensors, made zero by the default ``_init_state`` with
  :meth:`DescentOptimizer.zeros` (so they get the group's state dtype); a rule that starts them
  otherwise overrides ``_init_state(param, group)``. The base adds ``"step"`` (a float32 tensor on
  the parameter's device, as torch's fused optimizers keep it) when the class sets
  ``counts_steps = True``.
- ``scalar_state``: state scalars that are not per element (Nadam's μ-product), with the dtype they
  keep on load; the base mirrors them, and ``"step"``, on the host in ``host`` dicts so that a step
  never reads a device value back (no ``.item()``, no host sync on a GPU).
- ``reference``: the pure reference function (``staticmethod(...)``), taking θ, g and the
  ``state_names`` tensors and returning their new values; the default ``_reference_update(group,
  param, grad, state, host, lr)`` calls it through :func:`descent.optim.reference.apply_reference`
  (keywords from the group, ``_reference_keywords`` adds others). ``host["step"]`` is the step
  count t of this update (already advanced). A rule whose reference takes more overrides
  ``_reference_update``. A rule whose options or shapes leave some of ``state_names`` out
  returns the ones a parameter holds from ``_state_names(param, group)``: the default
  ``_init_state`` makes those, and the reference receives None for the others (a missing one of
  those it holds raises KeyError naming it).
- ``_foreach_update(step)``: the same formula over lists of tensors of one device and one dtype,
  written with :data:`descent.optim._compat.foreach` ops; ``step`` is a :class:`StepArgs`
  (``step.group``, ``step.params``, ``step.grads``, ``step.states``, ``step.hosts``, ``step.lr``).
  Never write into ``step.grads``.
- ``_fast_update(step)``: defaults to the foreach formulation; a rule with a single-pass kernel
  overrides it, sends what the kernel takes there (``step.fused_buckets()``,
  ``step.native_split()``, ``step.lists(indices, *state_keys)``) and the rest to
  :meth:`DescentOptimizer._foreach_run` (``self._foreach_rest(step, rest)``;
  ``_native_shared`` does both from one value, list or function of t per kernel argument).

The fast path, by what the tensors are
--------------------------------------
1. float32/float64 parameters, state of the same dtype, contiguous, on CPU or CUDA: torch's fused
   kernel where torch has the rule (Adam, AdamW, AMSGrad, SGD/Momentum, Adagrad, through
   :mod:`descent.optim._compat`); otherwise, on CPU, descent's single-pass C kernel (RMSprop,
   Adadelta, AdaMax, Nadam, the lecture's Nesterov, Lion, Schedule-Free), or its two-pass kernels
   (sums, then the update: LAMB, LARS, Prodigy).
2. Everything else (GPU tensors without a fused kernel, bfloat16/float16 parameters, a state dtype
   other than the parameter's, non-contiguous tensors, no C compiler at install, a torch whose
   private kernels fail their self-test): the rule's foreach formulation, computed in float32 or
   wider ("opmath", as torch's fused kernels do) and written back into the parameter's dtype.

There is no chunked eager loop: on a GPU the right fallback is a few multi-tensor launches, and on
a CPU the C kernels cover the cases where a chunked loop's cache reuse used to matter.

Which step runs (:meth:`DescentOptimizer._path`)
------------------------------------------------
- "reference": ``impl="reference"``, torch's ``foreach=False`` (its for-loop implementation) or
  ``differentiable=True`` (the per-tensor formula under autograd, so gradients flow through it).
- "device": ``capturable=True``, or any step traced by torch.compile: the foreach formulation
  with the step count t read from the device (``state["step"]``, in float64) instead of the host
  mirror, so a compiled step does not specialize on t and a captured CUDA graph replays the right
  bias corrections. Rules write their scalars with :func:`scalar_sqrt` and ``**`` so that the
  same code takes a float t or a 0-d tensor t.
- "foreach": ``foreach=True`` or ``fused=False``: the foreach formulation, no kernel.
- "fast": the default, described above (``fused=True`` asks for it explicitly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim import _compat, checkpoint
from descent.optim._compat import foreach
from descent.optim.options import (
    OPTIONS,
    check_torch_options,
    show_options_in_signature,
)
from descent.optim.reference import apply_reference
from descent.optim.stepping import Group, Host, Plan, State, StepArgs, Stepping

Schedule = Callable[[int], float]
LearningRate = float | Schedule

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_STATE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def scalar_sqrt(value: Any) -> Any:
    """√value of a step-dependent scalar: a float on the host paths, a 0-d tensor on the device
    path (math.sqrt would read the tensor back)."""
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def validate_betas(betas: Any) -> tuple[float, float]:
    """(β₁, β₂), each in [0, 1), as a tuple of floats (a list is accepted)."""
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise InputError(f"betas must be a pair (β₁, β₂), each in [0, 1), got {betas!r}")
    return (
        validate.unit_interval(betas[0], "betas[0] (β₁)"),
        validate.unit_interval(betas[1], "betas[1] (β₂)"),
    )


def effective_grad(param: Tensor, grad: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """g ← ±g + λθ: the gradient a rule sees (negated to maximize, plus the L2 term)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    return grad


def effective_grads(
    params: list[Tensor], grads: list[Tensor], weight_decay: float, maximize: bool
) -> list[Tensor]:
    """:func:`effective_grad` over lists (new tensors when anything is added; grads stay as they
    are)."""
    if maximize:
        grads = foreach.neg(grads)
    if weight_decay != 0:
        grads = foreach.add(grads, params, alpha=weight_decay)
    return grads


# torch's own methods, without the wrapper that imports torch._dynamo at first call (_compat)
_add_param_group = _compat.outside_dynamo(torch.optim.Optimizer.add_param_group)
_state_dict = _compat.outside_dynamo(torch.optim.Optimizer.state_dict)
_load_state_dict = _compat.outside_dynamo(torch.optim.Optimizer.load_state_dict)


class DescentOptimizer(Stepping, torch.optim.Optimizer):
    """Base of descent's update rules (see the module docstring for the subclass contract)."""

    #: True when the rule keeps a per-parameter step count ``state["step"]``
    counts_steps: ClassVar[bool] = True
    #: scalar (not per-element) state and the dtype it keeps whatever the parameter's
    scalar_state: ClassVar[dict[str, torch.dtype]] = {}

    #: False when the rule reads a value back to the host each step (no capturable step)
    device_steps: ClassVar[bool] = True
    #: False when the rule's reference step does not let autograd through (no differentiable=True)
    supports_differentiable: ClassVar[bool] = True
    #: True when each entry's update reads only that entry's gradient and state (and scalars of
    #: the group): a stack of independent problems on a leading axis then steps each as if alone
    #: (federated clients under vmap, a race's runs). False for rules that reduce over a tensor
    #: (trust ratios, factored moments, orthogonalization, global estimates).
    elementwise: ClassVar[bool] = True

    #: the per-element state tensors (zero at the start, unless the rule's ``_init_state`` says
    #: otherwise), in the order the reference function takes and returns them after θ and g
    state_names: ClassVar[tuple[str, ...]] = ()
    #: the rule's pure reference function of one tensor (the formula line by line), which the
    #: base's ``_reference_update`` calls through :func:`apply_reference`
    reference: ClassVar[Callable[..., Any] | None] = None
    #: the rule's boolean hyperparameters (the base's ``_validate`` checks them)
    flags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], **options: Any) -> None:
        for name in options:
            if name not in OPTIONS:
                raise TypeError(
                    f"{type(self).__name__}.__init__() got an unexpected keyword argument {name!r}"
                )
        defaults = {**OPTIONS, **defaults, **options}
        defaults.setdefault("step", 0)
        self._hosts: dict[Tensor, Host] = {}
        self._plans: dict[int, Plan] = {}
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch pickles only defaults, state and param_groups: the host mirrors and step plans
        # are rebuilt from the state at the next step.
        super().__setstate__(state)
        self._hosts, self._plans = {}, {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        show_options_in_signature(cls)

    # -- construction and validation ----------------------------------------------------------

    def _validate(self, group: Group) -> None:
        for name in self.flags:
            validate.flag(group[name], name)
        validate.learning_rate(group["lr"])
        validate.flag(group["maximize"], "maximize")
        validate.choice(group["impl"], "impl", ("fast", "reference"))
        if "weight_decay" in group:
            validate.nonnegative(group["weight_decay"], "weight_decay")
        validate.flag(group["stochastic_rounding"], "stochastic_rounding")
        dtype = group["state_dtype"]
        if dtype is not None and dtype not in _STATE_DTYPES:
            names = ", ".join(str(d) for d in _STATE_DTYPES)
            raise InputError(f"state_dtype must be None or one of {names}, got {dtype!r}")
        check_torch_options(self, group)

    zero_grad = _compat.outside_dynamo(torch.optim.Optimizer.zero_grad)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _add_param_group(self, param_group)
        group = self.param_groups[-1]
        try:
            self._validate(group)
            for param in group["params"]:
                if param.is_sparse:
                    raise InputError(f"{type(self).__name__} does not take sparse parameters")
        except ValueError:
            self.param_groups.pop()
            raise

    # -- the learning rate and the state ------------------------------------------------------

    @staticmethod
    def lr_at(group: Group, update: int | None = None) -> float:
        """The group's learning rate at ``update`` (default: the next update)."""
        lr = group["lr"]
        n = group["step"] if update is None else update
        if callable(lr):
            value = float(lr(n))
            if not math.isfinite(value) or value < 0:
                raise InputError(
                    f"the learning-rate schedule {lr!r} gave {value!r} at update {n}; "
                    "a learning rate must be a finite number ≥ 0"
                )
            return value
        return float(lr)

    @staticmethod
    def state_dtype(param: Tensor, group: Group) -> torch.dtype:
        """The dtype of the per-element state: the group's ``state_dtype``, else float32 for
        bfloat16/float16 parameters (so ε and small squared gradients do not underflow) and the
        parameter's dtype otherwise (complex parameters always keep theirs)."""
        if torch.is_complex(param) or not param.is_floating_point():
            return param.dtype
        chosen = group.get("state_dtype")
        if chosen is not None:
            return chosen
        return torch.float32 if param.dtype in _LOW_PRECISION else param.dtype

    def zeros(self, param: Tensor, group: Group, names: Sequence[str]) -> State:
        """Zero state tensors shaped like ``param``, in the group's state dtype."""
        dtype = self.state_dtype(param, group)
        return {
            name: torch.zeros_like(param, dtype=dtype, memory_format=torch.preserve_format)
            for name in names
        }

    # -- the subclass's part ------------------------------------------------------------------

    def _init_state(self, param: Tensor, group: Group) -> State:
        return self.zeros(param, group, self._state_names(param, group))

    def _state_names(self, param: Tensor, group: Group) -> Sequence[str]:
        """The names of :attr:`state_names` that ``param``'s state holds under ``group``'s
        options (all of them, unless the rule leaves some out)."""
        return self.state_names

    def _init_host(self, group: Group) -> Host:
        """Initial values of :attr:`scalar_state` (the base sets the tensors from them)."""
        return {}

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, host: Host, lr: float
    ) -> None:
        if self.reference is None:
            raise NotImplementedError
        keywords = self._reference_keywords(group, param)
        apply_reference(
            self.reference,
            group,
            param,
            grad,
            state,
            host,
            lr,
            self.state_names,
            held=self._state_names(param, group),
            **keywords,
        )

    def _reference_keywords(self, group: Group, param: Tensor) -> dict[str, Any]:
        """Arguments of :attr:`reference` that are not the group's entries of the same name."""
        return {}

    def _foreach_update(self, step: StepArgs) -> None:
        raise NotImplementedError

    def _fast_update(self, step: StepArgs) -> None:
        self._foreach_run(step)

    # -- saving and resuming (the details in descent.optim.checkpoint) -------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict; a schedule as ``lr`` is stored as its dict form when it has one."""
        saved = _state_dict(self)
        checkpoint.encode_schedules(saved["param_groups"])
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state; a schedule saved as a dict is rebuilt, an opaque one keeps this lr, and
        every loaded group is checked as a new one is (a torch optimizer's group may ask for what
        this rule does not do, e.g. SGD's dampening).

        torch casts every floating state tensor to its parameter's dtype on load; descent then puts
        back each saved tensor in the dtype it keeps (the state dtype, float64 scalars, a float32
        step on the parameter's device), so a resumed run continues bit for bit.
        """
        current_lrs = [group["lr"] for group in self.param_groups]
        _load_state_dict(self, state_dict)
        self._forget_plans()
        for group in self.param_groups:  # a state dict from torch's own optimizer lacks these
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        checkpoint.restore_dtypes(self, state_dict)
        checkpoint.decode_schedules(self.param_groups, current_lrs)
        for group in self.param_groups:  # what another optimizer saved must be one descent runs
            self._validate(group)

    def loaded_dtype(self, param: Tensor, group: Group, key: str, value: Tensor) -> torch.dtype:
        """The dtype descent keeps state ``key`` of ``param`` in."""
        if key == "step":
            return torch.float32
        if key in self.scalar_state:
            return self.scalar_state[key]
        if not value.is_floating_point() and not value.is_complex():
            return value.dtype
        return self.state_dtype(param, group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]!r}")
        lines.append(")")
        return "\n".join(lines)
