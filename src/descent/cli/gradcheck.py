"""`descent gradcheck [basis softmax mlp cnn] [--module path.py:ClassName --input-shape 1,8,8]`:
check descent's built-in models (and yours) against centered differences; exit 1 on a failure."""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import torch
    from torch import nn

    from descent.gradcheck import GradcheckResult

from descent.cli.console import console
from descent.cli.run_options import InputShapeOption, ModuleOption, parse_input_shape

BUILT_IN = ("basis", "softmax", "mlp", "cnn")


class UserCodeError(ValueError):
    """An exception raised in the user's own file (``--module``): reported as one line with the
    file and line where it happened, since it is the user's code, not descent's, that failed."""


def _user_frame(error: BaseException, path: Path) -> traceback.FrameSummary | None:
    """The innermost frame of ``error``'s traceback that lies in ``path``."""
    target = str(path.resolve())
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve().as_posix() == Path(target).as_posix()
    ]
    return frames[-1] if frames else None


def _user_error(error: BaseException, path: Path, doing: str) -> UserCodeError:
    """One line: where in the user's file, what was being done, and the exception."""
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename) == path:
        return UserCodeError(f"{path}:{error.lineno}: syntax error ({error.msg}) {doing}")
    frame = _user_frame(error, path)
    where = f"{path}:{frame.lineno}" if frame is not None else str(path)
    message = " ".join(str(error).split())
    return UserCodeError(f"{where}: {type(error).__name__}: {message} ({doing})")


def _digits_batch(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch
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
    import torch
    from torch.nn import functional as F

    from descent.gradcheck import check
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


def load_user_module(spec: str) -> tuple[nn.Module, Path]:
    """Import ``path.py`` (this runs the user's file, as ``python path.py`` would) and instantiate
    ``ClassName()``; an exception in the user's code is one line with its file and line."""
    from torch import nn

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
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # anything the user's file raises while it is imported
        raise _user_error(error, path, "while importing it") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"{path} defines no {class_name!r}")
    try:
        instance = cls()
    except Exception as error:
        raise _user_error(error, path, f"in {class_name}() with no arguments") from None
    if not isinstance(instance, nn.Module):
        raise ValueError(f"{spec} is not a torch.nn.Module")
    return instance, path


def input_shape_of(model: nn.Module, text: str | None) -> tuple[int, ...]:
    from torch import nn

    if text:
        return parse_input_shape(text)
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("give --input-shape (the shape of one example) for this module")
    return (first.in_features,)


def gradcheck(
    models: Annotated[
        list[str] | None, typer.Argument(help="Built-in models: basis, softmax, mlp, cnn (all).")
    ] = None,
    module: ModuleOption = None,
    input_shape: InputShapeOption = None,
    h: Annotated[float, typer.Option(help="Step of the difference quotient.")] = 1e-5,
    method: Annotated[str, typer.Option(help="centered or forward.")] = "centered",
    max_coords: Annotated[int, typer.Option(min=1, help="Coordinates checked per tensor.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds data, weights and the coordinate sample.")] = 0,
) -> None:
    """Check analytic gradients against numeric ones; exit status 1 when a check fails.

    With --module, your file is imported and executed: it is your code that runs."""
    import torch

    from descent.gradcheck import check

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
        model, path = load_user_module(module)
        shape = input_shape_of(model, input_shape)
        batch = torch.randn(4, *shape, generator=torch.Generator().manual_seed(seed))
        try:
            result = check(model, (batch,), h=h, method=method, max_coords=max_coords, seed=seed)
        except Exception as error:
            if _user_frame(error, path) is None:
                raise  # not the user's code: descent's own error (bad input) or a bug
            raise _user_error(
                error, path, f"in the forward pass on a batch of shape {tuple(batch.shape)}"
            ) from None
        results.append((module, result))
    for name, result in results:
        console.print(f"[bold]{name}[/bold]")
        console.print(result)
    failed = [name for name, result in results if not result.passed]
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)}")
        raise typer.Exit(code=1)
    console.print(f"[green]all {len(results)} gradient checks passed[/green]")
