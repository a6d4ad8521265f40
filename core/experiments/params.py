"""Reading an experiment's parameters from a form or a job row: unknown keys refused, numbers coerced, then the
dataclass's own checks (each a clear message)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from core.errors import InvalidInput

P = TypeVar("P")


MAX_STEPS = 100_000  # optimiser steps of all the trainings of one experiment together


def parse(cls: type[P], raw: dict[str, Any] | None, *, ints: tuple[str, ...] = (), floats: tuple[str, ...] = (),
          optional_ints: tuple[str, ...] = (), int_lists: tuple[str, ...] = (), float_lists: tuple[str, ...] = (),
          bools: tuple[str, ...] = (), words: tuple[str, ...] = ()) -> P:
    """`cls(**raw)` with each named field coerced (lists become sorted tuples without repeats; 0 or "" in an optional
    field means none; a flag is a bool or one of true/false/1/0), then `validate()`."""
    raw = dict(raw or {})
    unknown = set(raw) - {f.name for f in fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
    if unknown:
        raise InvalidInput(f"Unknown experiment parameter(s): {', '.join(sorted(unknown))}.")
    try:
        for key in int_lists + float_lists:
            if key in raw:
                kind = int if key in int_lists else float
                raw[key] = tuple(sorted({kind(v) for v in raw[key]}))
        for key in ints + floats:
            if key in raw:
                raw[key] = int(raw[key]) if key in ints else float(raw[key])
        for key in optional_ints:
            raw[key] = None if raw.get(key) in (None, "", 0) else int(raw[key])
    except (TypeError, ValueError):
        raise InvalidInput("Experiment parameters must be numbers.") from None
    for key in bools:
        if key in raw:
            flag = {"true": True, "1": True, "false": False, "0": False}.get(str(raw[key]).strip().lower())
            if flag is None:
                raise InvalidInput(f"The experiment parameter {key} must be true or false.")
            raw[key] = flag
    for key in words:
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise InvalidInput(f"The experiment parameter {key} must be a word.")
    params = cls(**raw)
    params.validate()  # type: ignore[attr-defined]  # every experiment's parameters define validate()
    return params


def total_steps_rule(steps: int) -> tuple[bool, str]:
    return (steps <= MAX_STEPS, f"That is {steps:,} training steps in all; one experiment may run at most {MAX_STEPS:,} "
                                "(fewer repeats, points or steps per run).")


def check(rules: list[tuple[bool, str]]) -> None:
    """Raise InvalidInput with the message of the first rule that does not hold."""
    for ok, message in rules:
        if not ok:
            raise InvalidInput(message)
