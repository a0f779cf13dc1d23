"""The options every Keras optimizer shares (keras.optimizers.Optimizer's own arguments),
checked before TensorFlow: Keras checks some of them only when the optimizer is built, some
only at the first step, and some never (a `use_ema: "yes"` trains without an average)."""

from __future__ import annotations

from typing import Any

from cbrun.config.base import is_number

EMA_OPTIONS = ("ema_momentum", "ema_overwrite_frequency")
CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _accumulation(value: Any) -> str | None:
    if value is None or (_whole(value) and value >= 2):
        return None
    if value == 1 and _whole(value):
        return ("gradient_accumulation_steps: 1 accumulates nothing; leave it out, or give "
                "the number of batches whose gradients are averaged into one update (>= 2)")
    return (f"gradient_accumulation_steps must be a whole number >= 2 (the batches whose "
            f"gradients are averaged into one update), got {value!r}")


def _option_problem(key: str, value: Any) -> str | None:
    if key == "gradient_accumulation_steps":
        return _accumulation(value)
    if key == "use_ema" and not isinstance(value, bool):
        return f"use_ema must be true or false, got {value!r}"
    if key == "ema_momentum" and not (is_number(value) and 0 <= value < 1):
        return (f"ema_momentum must be a number from 0 up to but not including 1 (the share "
                f"of the average kept at each step; Keras's default 0.99; at 1 the average "
                f"never leaves the initial weights), got {value!r}")
    if key == "ema_overwrite_frequency" and not (value is None or (_whole(value) and value >= 1)):
        return (f"ema_overwrite_frequency must be a whole number of steps >= 1, or null (the "
                f"weights take the average once, when training ends), got {value!r}")
    if key in (*CLIPS, "weight_decay") and not (value is None
                                                 or (is_number(value) and value >= 0)):
        return f"{key} must be a number >= 0, got {value!r}"
    return None


def option_problems(options: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for each shared optimizer option given wrong, and for options that
    contradict each other."""
    found = [(key, problem) for key, value in options.items()
             if (problem := _option_problem(key, value)) is not None]
    if options.get("use_ema", False) is False:
        found += [(key, (f"{key} has no effect without use_ema: true (the optimizer keeps no "
                        "moving average); add use_ema: true or remove it"))
                  for key in EMA_OPTIONS if key in options]
    clips = [key for key in CLIPS if options.get(key) is not None]
    if len(clips) > 1:
        found.append((clips[1], (f"give one of {', '.join(CLIPS)}, not {' and '.join(clips)}: "
                                "Keras clips gradients one way")))
    return found
