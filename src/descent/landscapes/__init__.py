"""Optimizer races on 2-D landscapes: test functions with known minima, every rule from the same
start, and pictures of it (contours with paths, animated as GIF or MP4, or a 3-D surface)."""

from descent.landscapes.functions import LANDSCAPES, Landscape, Point, get, user_landscape
from descent.landscapes.race import (
    DEFAULT_RULES,
    RaceResult,
    RuleRun,
    direction_changes,
    race,
    simulate,
)

__all__ = [
    "DEFAULT_RULES",
    "LANDSCAPES",
    "Landscape",
    "Point",
    "RaceResult",
    "RuleRun",
    "direction_changes",
    "get",
    "race",
    "simulate",
    "user_landscape",
]
