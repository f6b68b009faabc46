"""The checks that need a CUDA GPU, as one prepared script (not part of `make test`):

1. every descent update rule gives on CUDA the CPU's result within 1e-5 (float32, 20 steps);
2. the step time of each rule on the GPU against torch.optim's fastest implementation of the same
   rule there (fused where torch has one, else foreach), over 10 M parameters in 10 tensors;
3. the compiled step of each rule (torch.compile, inductor) on the GPU: descent's eager step, its
   compiled step, the number of graphs compiled, and torch's compiled step of the same rule;
4. the Trainer on the digits CNN on the GPU (float32 and bf16-mixed): accuracy and fit time.

    python benchmarks/gpu_check.py [--params 10000000] [--repeats 20] [--skip-trainer]
                                   [--skip-compiled] [--cpu-dry-run]

Without a CUDA GPU it says so and exits with status 0. ``--cpu-dry-run`` runs every part on the
CPU instead, small (100,000 parameters, 2 timed steps, the aot_eager backend, no Trainer), to check
the script itself where no GPU is. Exit status 1 when a rule's result on the device differs from
its CPU result by more than the tolerance.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compiled_step import COMPILED, compiled_rows, median_step
from conditions import parser as benchmark_parser

TOLERANCE = 1e-5


def rule_matches_cpu(name: str, device: torch.device, steps: int = 20) -> float:
    """The largest relative difference between the CPU's and the GPU's parameters after
    ``steps`` updates of rule ``name`` from the same start and gradients."""
    from descent import optim

    generator = torch.Generator().manual_seed(0)
    shapes = [(64, 33), (257,), (3, 5, 7), (1,)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    grads = [[torch.randn(shape, generator=generator) for shape in shapes] for _ in range(steps)]
    finals = []
    for where in (torch.device("cpu"), device):
        params = [value.clone().to(where).requires_grad_() for value in start]
        rule = optim.create(name, params, lr=1e-2)
        for step_grads in grads:
            for param, grad in zip(params, step_grads, strict=True):
                param.grad = grad.to(where)
            rule.step()
        finals.append([param.detach().cpu() for param in params])
    worst = 0.0
    for cpu, gpu in zip(*finals, strict=True):
        scale = cpu.abs().clamp_min(1.0)
        worst = max(worst, float(((cpu - gpu).abs() / scale).max()))
    return worst


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What waits for the device's queued work (nothing on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def step_times(device: torch.device, total: int, repeats: int) -> None:
    from descent import optim
    from optim_step import RULES

    sync = synchronizer(device)
    print(f"\none step over {total:,} float32 parameters in 10 tensors on {device}")
    print(f"{'rule':10} {'descent':>10} {'torch best':>11} {'torch path':>10} {'ratio':>7}")
    generator = torch.Generator(device=device).manual_seed(0)

    def parameters() -> list[torch.Tensor]:
        params = []
        for _ in range(10):
            param = torch.randn(total // 10, device=device, generator=generator).requires_grad_()
            param.grad = torch.randn(total // 10, device=device, generator=generator) * 1e-2
            params.append(param)
        return params

    for name, (_bytes, factory, kwargs) in RULES.items():
        ours = median_step(
            optim.create(name, parameters(), **{"lr": 1e-3, **kwargs}).step, repeats, sync
        )
        best, path = float("inf"), ""
        for variant in ({"fused": True}, {"foreach": True}):
            try:
                peer = factory(parameters(), **variant)
            except (RuntimeError, TypeError, ValueError):
                continue  # torch has no such implementation of this rule
            seconds = median_step(peer.step, repeats, sync)
            if seconds < best:
                best, path = seconds, next(iter(variant))
        print(f"{name:10} {ours * 1e3:8.3f}ms {best * 1e3:9.3f}ms {path:>10} {ours / best:6.2f}x")


def trainer_on_gpu(device: torch.device) -> None:
    from descent.train.config import load_config
    from descent.train.run import run

    print(f"\nthe Trainer: SmallCNN on digits, 40 epochs, mini-batches of 50, on {device}")
    for precision in ("32", "bf16-mixed"):
        start = time.perf_counter()
        outcome = run(load_config(model="cnn", device=str(device), precision=precision))
        wall = time.perf_counter() - start
        result = outcome.result
        print(
            f"precision {precision:10} test accuracy {outcome.test_accuracy:.4f}; fit "
            f"{result.seconds:.1f} s ({result.examples_per_second:,.0f} examples/s), "
            f"run {wall:.1f} s"
        )


def compiled_step_times(device: torch.device, total: int, repeats: int, backend: str) -> None:
    print(f"\nthe compiled step over {total:,} float32 parameters in 10 tensors on {device}")
    compiled_rows(COMPILED, total, 10, repeats, backend, device, synchronizer(device))


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-compiled", action="store_true")
    parser.add_argument("--backend", default=None, help="torch.compile backend (inductor)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="check the script on the CPU")
    args = parser.parse_args()
    if args.cpu_dry_run:
        device = torch.device("cpu")
        args.params, args.repeats, args.skip_trainer = 100_000, 2, True
        backend = args.backend or "aot_eager"
        print(f"torch {torch.__version__}, CPU dry run (small sizes; figures mean nothing)")
    elif not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
            "nothing to check here: run this script where a GPU is (or --cpu-dry-run)"
        )
        return 0
    else:
        device = torch.device("cuda", 0)
        backend = args.backend or "inductor"
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    from descent import optim

    print(f"\nevery rule on {device} vs the CPU (20 steps, float32, tolerance {TOLERANCE:g})")
    failed = []
    for name in optim.OPTIMIZERS:
        try:
            worst = rule_matches_cpu(name, device)
        except Exception as error:  # one rule's failure must not hide the others' figures
            print(f"{name:10} ERROR {type(error).__name__}: {error}")
            failed.append(name)
            continue
        verdict = "ok" if worst <= TOLERANCE else "DIFFERS"
        print(f"{name:10} largest relative difference {worst:.2e}  {verdict}")
        if worst > TOLERANCE:
            failed.append(name)
    step_times(device, args.params, args.repeats)
    if not args.skip_compiled:
        compiled_step_times(device, args.params, args.repeats, backend)
    if not args.skip_trainer:
        trainer_on_gpu(device)
    if failed:
        print(f"\nrules whose result on {device} differs from the CPU's: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
