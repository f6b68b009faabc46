"""The options more than one command takes, each defined once (its help, its checks), and the
rule by which `descent train` and `descent lr-find` combine a RunConfig file with the options that
override it.

An option whose default differs between commands is a ``typer.Option`` here (``OPTIMIZER``) that
each command annotates with its own type and default; one whose default is the same everywhere is
a whole annotation (``ConfigOption``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from descent.train.config import RunConfig

ConfigOption = Annotated[
    Path | None, typer.Option(help="A YAML RunConfig; options below override it.")
]
#: `train`, `lr-find`: RunConfig's model (its default depends on the data), data sources
#: (descent.train.run.load_data), a table's target and seed
RunModelOption = Annotated[
    str | None, typer.Option(help="softmax, mlp or cnn (default: cnn; mlp for a table).")
]
SeedOption = Annotated[int | None, typer.Option(help="Seeds everything (an integer ≥ 0).")]
DataOption = Annotated[
    str | None,
    typer.Option(
        help="digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder:DIR (one subfolder per "
        "class; folder:DIR@64 resizes to 64×64), or table:FILE (a CSV or Parquet file; with "
        "--target)."
    ),
]
TargetOption = Annotated[str | None, typer.Option(help="The column of a table:FILE to predict.")]
#: `train`, `lr-find`, `regress`
OPTIMIZER = typer.Option(help="Any descent update rule.")
OptimizerOption = Annotated[str | None, OPTIMIZER]
BatchSizeOption = Annotated[int | None, typer.Option(help="Mini-batch size B.")]
#: `train`, `regress` (descent.validate.batch_mode reads it)
BATCH_MODE = typer.Option(help="full, single (one example per update) or minibatch.")
#: `federate` (`train`, `lr-find` and `diagnose init` say more: their defaults depend on the data)
MODEL = typer.Option(help="softmax, mlp or cnn.")
#: `gradcheck --module`, `diagnose init --module`: both import and run the file.
ModuleOption = Annotated[
    str | None,
    typer.Option(
        help="Your module as path.py:ClassName. This imports and runs path.py (as python "
        "would): give only a file you trust."
    ),
]
#: `gradcheck`, `diagnose init` (read by :func:`parse_input_shape`)
InputShapeOption = Annotated[
    str | None,
    typer.Option(
        help="Shape of one example, e.g. 1,28,28 (default: a built-in model's own; for --module, "
        "the inputs of its first Linear layer)."
    ),
]


def parse_input_shape(text: str) -> tuple[int, ...]:
    """--input-shape's ``1,28,28`` as (1, 28, 28): positive integers, comma-separated."""
    from descent import validate
    from descent.errors import InputError

    try:
        return tuple(validate.positive_int(int(part), "--input-shape") for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--input-shape must be positive integers like 1,8,8, got {text!r}"
        ) from None


def settings_from(config: Path | None, **given: Any) -> RunConfig:
    """The RunConfig of the file ``config`` (or the defaults) with the options ``given`` on the
    command line: an option left out (None) keeps the file's value or the default; one given
    always wins."""
    from descent.train.config import load_config

    return load_config(config, **{key: value for key, value in given.items() if value is not None})
