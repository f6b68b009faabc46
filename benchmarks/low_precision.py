"""Accuracy of every rule with bfloat16/float16 parameters, descent vs torch.optim, and stochastic
rounding vs round-to-nearest over a long run.

Table 1 (the measurement of issue 21): a 1,000-element parameter from linspace(−1, 1), 20 steps
with gradients sin(arange(1000) + k), lr 1e-2; each cell is max |θ − θ_float32| of the same rule
run in float32 (nan: the run produced NaN).

Table 2: 5,000 steps of SGD (lr 1e-4) and Adam (lr 1e-4) on bfloat16 parameters, with the update
rounded to nearest or stochastically (``stochastic_rounding=True``), against the float32 run:
max and mean |θ − θ_float32|, for gradients that oscillate (c = 0) and that drift (c = 1).

    python benchmarks/low_precision.py
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from descent import optim

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

TORCH: dict[str, Factory] = {
    "sgd": lambda p: torch.optim.SGD(p, lr=1e-2),
    "momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
    "nesterov": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-2),
    "adadelta": lambda p: torch.optim.Adadelta(p, lr=1e-2),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamax": lambda p: torch.optim.Adamax(p, lr=1e-2),
    "nadam": lambda p: torch.optim.NAdam(p, lr=1e-2),
    "amsgrad": lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2),
}


def final(
    factory: Factory, dtype: torch.dtype, steps: int, offset: float = 0.0, size: int = 1000
) -> torch.Tensor:
    param = torch.linspace(-1, 1, size, dtype=dtype).requires_grad_()
    opt = factory([param])
    for k in range(steps):
        gradient = offset + torch.sin(torch.arange(size, dtype=torch.float32) + k)
        param.grad = gradient.to(dtype)
        opt.step()
    return param.detach().double()


def errors(
    factory: Factory, dtype: torch.dtype, steps: int = 20, offset: float = 0.0
) -> tuple[float, float]:
    low = final(factory, dtype, steps, offset)
    difference = (low - final(factory, torch.float32, steps, offset)).abs()
    return float(difference.max()), float(difference.mean())


def main() -> None:
    print("max |θ − θ_float32| after 20 steps (descent fast / descent reference / torch)")
    print(f"{'rule':9} {'bfloat16':>30} {'float16':>30}")
    for name in optim.OPTIMIZERS:
        cells = []
        for dtype in (torch.bfloat16, torch.float16):
            fast = errors(lambda p, n=name: optim.create(n, p, lr=1e-2), dtype)[0]
            ref = errors(lambda p, n=name: optim.create(n, p, lr=1e-2, impl="reference"), dtype)[0]
            peer = errors(TORCH[name], dtype)[0]
            cells.append(f"{fast:9.1e} {ref:9.1e} {peer:9.1e}")
        print(f"{name:9} {cells[0]:>30} {cells[1]:>30}")

    print("\nbfloat16, 5,000 steps, lr 1e-4: |θ − θ_float32| max / mean")
    print("gradients g = c + sin(i + k): c = 0 oscillates (updates cancel), c = 1 drifts")
    for name, offset in (("sgd", 0.0), ("adam", 0.0), ("sgd", 1.0), ("adam", 1.0)):
        for rounding in (False, True):

            def factory(
                p: list[torch.Tensor], n: str = name, r: bool = rounding
            ) -> optim.DescentOptimizer:
                return optim.create(n, p, lr=1e-4, stochastic_rounding=r)

            worst, mean = errors(factory, torch.bfloat16, steps=5000, offset=offset)
            label = "stochastic" if rounding else "nearest"
            print(f"{name:5} c = {offset:g} {label:10} {worst:9.2e} {mean:9.2e}")


if __name__ == "__main__":
    main()
