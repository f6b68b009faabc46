"""The search space: bounds checked, never enumerated to validate; grid sizes counted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from descent.errors import InputError
from descent.tune import MAX_GRID_POINTS, SearchSpace
from descent.tune.space import difference

WIDE = {
    "base": {"model": "softmax", "epochs": 1},
    "params": {
        "batch_size": {"int": [1, 100_000_000]},
        "epochs": {"int": [1, 1_000_000_000]},
        "hidden": {"choices": [[8], [16, 16]]},
        "lr": {"float": [1e-5, 1.0], "log": True},
    },
}


def test_wide_int_ranges_are_checked_without_enumerating_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 10 row 17: `batch_size: {int: [1, 100000000]}` was listed point by point (MemoryError).
    def no_enumeration(self: SearchSpace) -> list:
        raise AssertionError("validation enumerated the space")

    monkeypatch.setattr(SearchSpace, "grid", no_enumeration)
    space = SearchSpace.from_dict(WIDE)
    assert [p.name for p in space.params] == ["batch_size", "epochs", "hidden", "lr"]


def test_grid_size_is_counted_and_an_oversized_grid_is_refused_with_its_size() -> None:
    space = SearchSpace.from_dict(
        {**WIDE, "params": {k: WIDE["params"][k] for k in WIDE["params"] if k != "lr"}}
    )
    assert space.grid_size() == 100_000_000 * 1_000_000_000 * 2
    with pytest.raises(
        InputError, match=f"the grid has 200000000000000000 points, more than {MAX_GRID_POINTS}"
    ):
        space.grid()


def test_conditional_grid_size_matches_the_enumerated_grid() -> None:
    space = SearchSpace.from_dict(
        {
            "base": {"model": "mlp", "epochs": 1},
            "params": {
                "optimizer": {"choices": ["momentum", "adam", "rmsprop"]},
                "batch_size": {"int": [10, 14]},
                "optimizer_params.momentum": {
                    "choices": [0.5, 0.9],
                    "when": {"optimizer": ["momentum"]},
                },
                "dropout": {"choices": [0.0, 0.5], "when": {"batch_size": [12, 13]}},
            },
        }
    )
    assert space.grid_size() == len(space.grid()) == (2 + 1 + 1) * (3 + 2 * 2) == 28
    assert len({repr(sorted(p.items())) for p in space.grid()}) == 28


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"float": [0.0, math.inf]}, r"a range bound must be a finite number, got inf"),
        ({"float": [math.nan, 0.1]}, r"a range bound must be a finite number, got nan"),
        ({"float": [True, 0.1]}, r"a range bound must be a finite number, got True"),
        ({"float": ["0.1", 0.2]}, r"a range bound must be a finite number, got '0.1'"),
        ({"int": [1, 2.5]}, r"an int range needs integer bounds, got 2.5"),
        ({"int": [False, 3]}, r"an int range needs integer bounds, got False"),
        ({"int": [5, 1]}, r"low 5 > high 1"),
        ({"int": [0, 8], "log": True}, r"a log range needs low > 0, got 0"),
        ({"float": [0.1]}, r"a range is \[low, high\]"),
        ({"float": [0.01, 0.1], "log": "yes"}, r"log must be True or False"),
        ({"choices": [0.1, 0.1]}, r"repeat a value"),
    ],
)
def test_bad_bounds_are_refused_in_one_line(spec: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as error:
        SearchSpace.from_dict({"params": {"lr": spec}})
    assert "\n" not in str(error.value)


def test_a_range_end_that_makes_a_bad_config_is_refused_naming_the_setting_and_value() -> None:
    with pytest.raises(InputError, match=r"dropout = 1.0: .*dropout"):
        SearchSpace.from_dict({"params": {"dropout": {"float": [0.0, 1.0]}}})


def test_conditions_that_can_never_hold_together_are_refused() -> None:
    with pytest.raises(InputError, match="can never hold together"):
        SearchSpace.from_dict(
            {
                "params": {
                    "optimizer": {"choices": ["momentum", "adam"]},
                    "batch_size": {"choices": [8, 16], "when": {"optimizer": ["adam"]}},
                    "optimizer_params.momentum": {
                        "choices": [0.9],
                        "when": {"optimizer": ["momentum"], "batch_size": [8]},
                    },
                }
            }
        )


def test_yaml_numbers_in_scientific_notation_are_floats(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  lr: {float: [1e-4, 1e-1], log: true}\n")
    (lr,) = SearchSpace.from_yaml(path).params
    assert (lr.low, lr.high) == (1e-4, 1e-1)


def test_difference_names_each_changed_setting() -> None:
    saved = {"space": {"params": {"lr": {"float": [0.1, 1.0]}}}, "method": "tpe"}
    given = {"space": {"params": {"lr": {"float": [0.1, 2.0]}}}, "method": "tpe"}
    assert difference(saved, given) == ["space.params.lr.float: [0.1, 1.0] there, [0.1, 2.0] here"]
