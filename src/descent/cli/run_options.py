"""What `descent train` and `descent lr-find` share: the options that name a RunConfig file and
override its settings, and the rule by which they combine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from descent.train.config import RunConfig

ConfigOption = Annotated[
    Path | None, typer.Option(help="A YAML RunConfig; options below override it.")
]
OptimizerOption = Annotated[str | None, typer.Option(help="Any descent update rule.")]
BatchSizeOption = Annotated[int | None, typer.Option(help="Mini-batch size B.")]


def settings_from(config: Path | None, **given: Any) -> RunConfig:
    """The RunConfig of the file ``config`` (or the defaults) with the options ``given`` on the
    command line: an option left out (None) keeps the file's value or the default; one given
    always wins."""
    from descent.train.config import load_config

    return load_config(config, **{key: value for key, value in given.items() if value is not None})
