"""`descent gradcheck [basis softmax mlp cnn] [--module path.py:ClassName --input-shape 1,8,8]`:
check descent's built-in models (and yours) against centered differences; exit 1 on a failure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from torch import nn
from torch.nn import functional as F

from descent.gradcheck import GradcheckResult, check

console = Console(width=None if sys.stdout.isatty() else 140)
BUILT_IN = ("basis", "softmax", "mlp", "cnn")


def _digits_batch(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(digits.target), generator=generator)[:size]
    images = torch.tensor(digits.images[rows.numpy()], dtype=torch.float64) / 16.0
    return images, torch.tensor(digits.target[rows.numpy()])


def check_built_in(
    name: str, *, h: float, method: str, max_coords: int, seed: int
) -> GradcheckResult:
    """One of descent's own gradients on a small bundled batch."""
    from descent.linear import Polynomial, gradient, loss
    from descent.models import MLP, SmallCNN, SoftmaxRegression

    kwargs: dict[str, Any] = {"h": h, "method": method, "max_coords": max_coords, "seed": seed}
    if name == "basis":
        from descent.data.tables import diabetes

        table = diabetes()
        Phi = Polynomial(2).fit_transform(table.X[:50])
        y = torch.tensor(table.y[:50], dtype=torch.float64)
        # Standardized: J's size sets the difference quotient's resolution (ε |J| / h).
        y = (y - y.mean()) / y.std()
        w = torch.randn(
            Phi.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        return check(
            lambda v: loss(Phi, y, v), (w,), analytic=lambda v: gradient(Phi, y, v), **kwargs
        )
    torch.manual_seed(seed)
    images, labels = _digits_batch(16, seed)
    model: nn.Module = {
        "softmax": lambda: SoftmaxRegression(64, 10),
        "mlp": lambda: MLP(64, 10, hidden=(32,)),
        "cnn": lambda: SmallCNN((1, 8, 8), 10, channels=(4, 8)),
    }[name]()
    return check(model, (images, labels), loss=F.cross_entropy, **kwargs)


def load_user_module(spec: str) -> nn.Module:
    """Instantiate ``path.py:ClassName`` with no arguments."""
    path_text, _, class_name = spec.rpartition(":")
    if not path_text or not class_name:
        raise ValueError(f"--module must be path.py:ClassName, got {spec!r}")
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"{path} defines no {class_name!r}")
    instance = cls()
    if not isinstance(instance, nn.Module):
        raise ValueError(f"{spec} is not a torch.nn.Module")
    return instance


def _input_shape(model: nn.Module, text: str | None) -> tuple[int, ...]:
    if text:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--input-shape must be integers like 1,8,8, got {text!r}") from None
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("give --input-shape (the shape of one example) for this module")
    return (first.in_features,)


def gradcheck(
    models: Annotated[
        list[str] | None, typer.Argument(help="Built-in models: basis, softmax, mlp, cnn (all).")
    ] = None,
    module: Annotated[str | None, typer.Option(help="Your module as path.py:ClassName.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Shape of one example for --module, e.g. 1,28,28.")
    ] = None,
    h: Annotated[float, typer.Option(help="Step of the difference quotient.")] = 1e-5,
    method: Annotated[str, typer.Option(help="centered or forward.")] = "centered",
    max_coords: Annotated[int, typer.Option(min=1, help="Coordinates checked per tensor.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds data, weights and the coordinate sample.")] = 0,
) -> None:
    """Check analytic gradients against numeric ones; exit status 1 when a check fails."""
    names = list(models or ([] if module else BUILT_IN))
    unknown = [name for name in names if name not in BUILT_IN]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; built-in: {', '.join(BUILT_IN)}")
    results: list[tuple[str, GradcheckResult]] = []
    for name in names:
        results.append(
            (name, check_built_in(name, h=h, method=method, max_coords=max_coords, seed=seed))
        )
    if module:
        model = load_user_module(module)
        shape = _input_shape(model, input_shape)
        batch = torch.randn(4, *shape, generator=torch.Generator().manual_seed(seed))
        results.append(
            (module, check(model, (batch,), h=h, method=method, max_coords=max_coords, seed=seed))
        )
    for name, result in results:
        console.print(f"[bold]{name}[/bold]")
        console.print(result)
    failed = [name for name, result in results if not result.passed]
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)}")
        raise typer.Exit(code=1)
    console.print(f"[green]all {len(results)} gradient checks passed[/green]")
