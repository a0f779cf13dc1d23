"""Checks across sections: compile's per-output loss and metrics against the outputs the
model declares, the data's named inputs and outputs against the model's, and unfreeze
stages against fit's epochs."""

from __future__ import annotations

from typing import Any

from cbrun.suggest import did_you_mean

Found = list[tuple[tuple[Any, ...], str]]


def output_problems(config: Any) -> Found:
    found: Found = []
    compile_, model = config.compile, config.model
    declared = model.output_names()  # None: one output, or unknown before TensorFlow
    given = compile_.output_names()
    if model.kind == "stack" and given is not None:
        found.append((("compile", "loss"), ("a stack has one output: give one loss, not a "
                                           "mapping by output name")))
    if declared is not None and len(declared) > 1 and given is None:
        example = ", ".join(f"{name}: ..." for name in declared)
        found.append((("compile", "loss"), (f"the model has {len(declared)} outputs "
                                           f"({', '.join(declared)}): give a loss for each, "
                                           f"loss: {{{example}}}")))
    if declared is not None and given is not None:
        for key in given:
            if key not in declared:
                found.append((("compile", "loss", key), (f"the model has no output {key!r}"
                                                        f"{did_you_mean(key, declared)}; "
                                                        f"outputs: {', '.join(declared)}")))
        missing = [name for name in declared if name not in given]
        if missing:
            found.append((("compile", "loss"), (f"no loss for output {missing[0]!r}; each "
                                               f"output needs one ({', '.join(declared)})")))
    several = given if given is not None and len(given) > 1 else None
    if several and model.kind != "stack" and isinstance(compile_.metrics, list) \
            and compile_.metrics:
        found.append((("compile", "metrics"), (f"with several outputs ({', '.join(several)}), "
                                               f"give metrics per output: {{{several[0]}: "
                                               "[accuracy]}")))
    # The model's own outputs when it declares them, else those the losses name.
    targets = declared or given or []
    for key in compile_.loss_weights or {}:
        if given is not None and key not in targets:
            found.append((("compile", "loss_weights", key),
                          (f"no output {key!r}{did_you_mean(key, targets)}; outputs: "
                          f"{', '.join(targets)}")))
    if isinstance(compile_.metrics, dict):
        for key in compile_.metrics:
            if key not in targets:
                found.append((("compile", "metrics", key),
                              (f"no output {key!r} has a loss{did_you_mean(key, targets)}; "
                              f"outputs: {', '.join(targets) or 'one, unnamed'}")))
    found += data_name_problems(config)
    for index, stage in enumerate(getattr(model, "unfreeze", [])):
        if stage.at_epoch >= config.fit.epochs:
            found.append((("model", "unfreeze", index, "at_epoch"),
                          (f"at_epoch {stage.at_epoch} is not before the last epoch "
                          f"(fit.epochs is {config.fit.epochs}), so nothing would unfreeze")))
    return found


def _names_problems(field: str, given: list[str], wanted: list[str], what: str) -> Found:
    found: Found = []
    for key in given:
        if key not in wanted:
            found.append((("data", field, key), (
                f"the model has no {what} {key!r}{did_you_mean(key, wanted)}; its {what}s: "
                f"{', '.join(wanted)}")))
    missing = [name for name in wanted if name not in given]
    if missing and not found:
        found.append((("data", field), (
            f"nothing feeds the model's {what}{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; name {'them' if len(missing) > 1 else 'it'} here")))
    return found


def data_name_problems(config: Any) -> Found:
    """The names the data gives its inputs and targets against a graph's inputs and
    outputs (other model kinds name theirs only once built; a stack has one of each)."""
    model, data = config.model, config.data
    inputs, outputs = data.named_inputs(), data.named_outputs()
    if model.kind == "stack":
        found: Found = []
        for named, what in ((inputs, "input"), (outputs, "output")):
            if named:
                found.append((("data", named[0]), (
                    f"a stack has one unnamed {what}, but the data names "
                    f"{', '.join(named[1])}; give one array or column list, or use a graph "
                    f"model whose {what}s have these names (docs/models.md)")))
        return found
    if model.kind != "graph":
        return []
    found = []
    if inputs:
        found += _names_problems(inputs[0], inputs[1], list(model.inputs), "input")
    if outputs:
        found += _names_problems(outputs[0], outputs[1], model.output_names(), "output")
    return found
