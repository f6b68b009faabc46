"""`descent diagnose …`: the group of diagnosis commands (initialization, stalls, curvature).

Each subcommand lives in its own module and is registered here by name; like every command module
they import torch only inside the command.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="diagnose",
    help="Diagnose a model or a run: initialization, stalls, curvature.",
    no_args_is_help=True,
)

#: (subcommand name, "module:function"), one line each.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("init", "descent.cli.diagnose_init:init"),
]

for _name, _target in SUBCOMMANDS:
    _module, _attribute = _target.split(":")
    app.command(name=_name)(getattr(importlib.import_module(_module), _attribute))
