"""What a gradient check reports: the verdict scale, per-coordinate and per-tensor results."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

CORRECT = 1e-7
KINK_LEVEL = 1e-4
SUSPICIOUS = 1e-2
TINY = 1e-300


class NondeterministicError(ValueError):
    """The checked function gives different values at the same point under a fixed RNG state."""


def verdict_of(relative_error: float) -> str:
    """The usual scale: correct, kink-level (fine only at kinks), suspicious, wrong."""
    if relative_error <= CORRECT:
        return "correct"
    if relative_error <= KINK_LEVEL:
        return "fine only with kinks"
    if relative_error <= SUSPICIOUS:
        return "suspicious"
    return "wrong"


# -- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coordinate:
    """One checked coordinate: where, both derivatives, their relative error, the kink flag, and
    the resolution of the difference quotient there (about 10 ε |f| / h: two derivatives closer
    than that are equal as far as the numeric one can tell, e.g. a true zero gradient)."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    relative_error: float
    kink: bool
    resolution: float = 0.0

    @property
    def judged_error(self) -> float:
        """The relative error, or 0 when the difference is below the numeric resolution."""
        if abs(self.analytic - self.numeric) <= self.resolution:
            return 0.0
        return self.relative_error


@dataclass(frozen=True)
class TensorReport:
    """The check of one tensor (an input or a parameter)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    coordinates: list[Coordinate] = field(repr=False)

    @property
    def checked(self) -> int:
        return len(self.coordinates)

    @property
    def kinks(self) -> int:
        return sum(c.kink for c in self.coordinates)

    def _errors(self, include_kinks: bool = True) -> list[float]:
        return [c.judged_error for c in self.coordinates if include_kinks or not c.kink]

    @property
    def max_error(self) -> float:
        """The largest relative error, as measured (kinks and tiny gradients included)."""
        return max((c.relative_error for c in self.coordinates), default=0.0)

    @property
    def median_error(self) -> float:
        errors = sorted(c.relative_error for c in self.coordinates)
        return errors[len(errors) // 2] if errors else 0.0

    @property
    def unresolved(self) -> int:
        """Coordinates whose error exceeds 1e-7 only because the gradient is below what the
        difference quotient resolves (their verdict counts them correct)."""
        return sum(
            1 for c in self.coordinates if c.relative_error > CORRECT and c.judged_error == 0.0
        )

    @property
    def worst(self) -> list[Coordinate]:
        """The five coordinates with the largest relative error (kinks last)."""
        ranked = sorted(
            self.coordinates, key=lambda c: (not c.kink, c.judged_error, c.relative_error)
        )
        return ranked[::-1][:5]

    @property
    def verdict(self) -> str:
        """The verdict of the worst coordinate that is not at a kink ("kink" if only those)."""
        smooth = self._errors(include_kinks=False)
        if not smooth:
            return "kink" if self.coordinates else "not checked"
        return verdict_of(max(smooth))

    @property
    def passed(self) -> bool:
        return all(c.kink or c.judged_error <= CORRECT for c in self.coordinates)


@dataclass(frozen=True)
class GradcheckResult:
    """Per-tensor reports; ``passed`` only when every checked coordinate is correct or at a kink.

    Prints as a table (rich), converts with ``to_dict()``."""

    tensors: list[TensorReport]
    method: str
    h: float

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.tensors)

    @property
    def max_error(self) -> float:
        return max((report.max_error for report in self.tensors), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "method": self.method,
            "h": self.h,
            "tensors": [
                {
                    "name": r.name,
                    "shape": list(r.shape),
                    "checked": r.checked,
                    "of": r.numel,
                    "max_relative_error": r.max_error,
                    "median_relative_error": r.median_error,
                    "kinks": r.kinks,
                    "below_resolution": r.unresolved,
                    "verdict": r.verdict,
                    "worst": [
                        {
                            "index": list(c.index),
                            "analytic": c.analytic,
                            "numeric": c.numeric,
                            "relative_error": c.relative_error,
                            "kink": c.kink,
                            "below_resolution": c.judged_error == 0.0 and c.relative_error > 0,
                        }
                        for c in r.worst
                    ],
                }
                for r in self.tensors
            ],
        }

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"gradient check ({self.method} differences, h = {self.h:g}): "
            + ("PASSED" if self.passed else "FAILED"),
        )
        columns = (
            "tensor",
            "checked",
            "max rel. error",
            "median",
            "kinks",
            "below resolution",
            "verdict",
            "worst coordinate: analytic vs numeric",
        )
        for column in columns:
            table.add_column(column, justify="left" if column in ("tensor", "verdict") else "right")
        for report in self.tensors:
            worst = report.worst[0] if report.worst else None
            where = (
                f"{list(worst.index)}: {worst.analytic:.6g} vs {worst.numeric:.6g}"
                + (" (kink)" if worst.kink else "")
                if worst
                else ""
            )
            table.add_row(
                f"{report.name} {list(report.shape)}",
                f"{report.checked}/{report.numel}",
                f"{report.max_error:.1e}",
                f"{report.median_error:.1e}",
                str(report.kinks),
                str(report.unresolved),
                report.verdict,
                where,
            )
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=140, file=io.StringIO())
        console.print(self)
        return console.file.getvalue()  # type: ignore[attr-defined]


