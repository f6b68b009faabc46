"""`descent gradcheck --module`: errors in the user's own file are one line with its file and line;
its help says the file is executed; a function whose value is NaN is called NaN (issue 10 rows 25,
26; issue 20)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from descent.errors import InputError
from descent.gradcheck import check
from tests.cli_support import refusal, run_cli

GOOD_HEAD = "import torch\nfrom torch import nn\n\n"

CASES = {
    "syntax": (GOOD_HEAD + "class Net(nn.Module)\n    pass\n", 4, "syntax error"),
    "import": ("import torch\nimport no_such_package_here\n", 2, "ModuleNotFoundError"),
    "init": (
        GOOD_HEAD + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        raise RuntimeError('bad init')\n",
        7,
        "RuntimeError: bad init (in Net() with no arguments)",
    ),
    "forward": (
        GOOD_HEAD + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.layer = nn.Linear(3, 2)\n\n    def forward(self, x):\n"
        "        return self.layer(x) @ torch.ones(5)\n",
        10,
        "in the forward pass on a batch of shape (4, 3)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_in_the_users_file_are_one_line_with_file_and_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, line, message = CASES[case]
    path = tmp_path / "mine.py"
    path.write_text(source)
    err = refusal(["gradcheck", "--module", f"{path}:Net"], capsys)
    assert f"{path}:{line}" in err
    assert message in err


def test_the_help_says_the_file_is_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["gradcheck", "--help"], capsys)
    assert code == 0
    assert "runs path.py" in " ".join(out.split())


def test_a_nan_value_is_called_nan_not_nondeterministic() -> None:
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(InputError, match=r"value at the given point is nan, not a finite number"):
        check(lambda v: torch.log(v).sum(), (x,))
