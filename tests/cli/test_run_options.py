"""The options several commands share are defined once: the same help and the same checks in
every command that takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from descent.cli.run_options import parse_input_shape
from descent.errors import InputError
from tests.cli_support import refusal, run_cli

LINEAR_MODULE = (
    "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.layer = nn.Linear(3, 2)\n\n"
    "    def forward(self, x):\n        return self.layer(x)\n"
)


def test_an_input_shape_is_positive_integers() -> None:
    assert parse_input_shape("1,28,28") == (1, 28, 28)
    assert parse_input_shape("64") == (64,)
    for text in ("8,x", "0,3", "-1", ""):
        with pytest.raises(InputError, match="--input-shape must be positive integers like 1,8,8"):
            parse_input_shape(text)


@pytest.mark.parametrize("command", [["gradcheck"], ["diagnose", "init"]])
def test_both_commands_that_run_a_module_check_its_input_shape_alike(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.py"
    path.write_text(LINEAR_MODULE)
    err = refusal([*command, "--module", f"{path}:Net", "--input-shape", "3,0"], capsys)
    assert "--input-shape must be positive integers like 1,8,8, got '3,0'" in err


#: words of each shared option's help, and the commands that take the option
SHARED_HELP = {
    "runs path.py": ("gradcheck", "diagnose init"),
    "full, single (one example per update) or minibatch": ("train", "regress"),
    "Any descent update rule": ("lr-find", "regress"),
    "folder:DIR@64 resizes to 64×64), or table:FILE": ("train", "lr-find"),
    "The column of a table:FILE to predict.": ("train", "lr-find"),
    "softmax, mlp or cnn (default: cnn; mlp for a table).": ("train", "lr-find"),
    "Seeds everything (an integer ≥ 0).": ("train", "lr-find"),
}


@pytest.mark.parametrize(
    ("command", "words"),
    [(command.split(), words) for words, commands in SHARED_HELP.items() for command in commands],
)
def test_a_shared_option_says_the_same_in_every_command(
    command: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    assert words in " ".join(out.replace("│", " ").split())  # the help box's text, unwrapped
