"""`model: {inputs, layers, outputs}`: a functional graph, as a Keras user writes by hand.

Every input and every layer has a name; a layer names what it takes (`inputs: story`, or
`[a, b]` for Concatenate/Add/Dot, or `{query: q, value: v}` for keyword calls), and a
layer that `shares: other` applies `other`'s layer (the same weights) to new inputs. The
graph's mistakes (an unknown name, a cycle, a layer nobody uses, an output that does not
exist, a name given twice) are found here, before TensorFlow is imported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from cbrun.config.base import KerasObjectSpec, ManyProblems, StrictModel
from cbrun.config.model.layers import (
    ADAPT_FIELD,
    DTYPES,
    Adapt,
    Found,
    UnfreezeSpec,
    layer_problems,
    unfreeze_problems,
    unknown_keys,
)
from cbrun.suggest import close_matches, did_you_mean

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


class InputSpec(StrictModel):
    shape: list[int | None] = Field(
        min_length=1, description="Shape of one sample, without the batch axis; null for a "
                                  "length that varies.")
    dtype: DTYPES = Field("float32", description="Element type. Defaults to float32 "
                                                 "(int32 for token ids fed to Embedding, string for "
                                                 "raw text).")

    @field_validator("shape")
    @classmethod
    def _positive(cls, value: list[int | None]) -> list[int | None]:
        if any(d is not None and d <= 0 for d in value):
            raise ValueError(f"every dimension must be a positive integer or null, got {value}")
        return value


class NodeSpec(KerasObjectSpec):
    """A layer of the graph: `{name, type, inputs, ...its keyword arguments}`, or
    `{name, shares: other, inputs}` to apply `other`'s layer (same weights) again."""

    type: str | None = Field(  # type: ignore[assignment]
        None, description="A keras.layers class or keras.applications backbone.")
    name: str = Field(pattern=NAME_PATTERN,
                      description="This layer's name, which later layers and outputs use.")
    inputs: str | list[str] | dict[str, str] = Field(
        description="What the layer is applied to: a name, a list of names (Concatenate, "
                    "Add, Dot...), or {argument: name} for keyword calls (MultiHeadAttention "
                    "query/value).")
    shares: str | None = Field(
        None, description="Apply the layer of this named layer again: the same weights.")
    adapt: Adapt = ADAPT_FIELD

    @model_validator(mode="after")
    def _layer(self) -> NodeSpec:
        if self.shares is not None:
            if self.type is not None or self.kwargs or self.adapt:
                extra = ("type" if self.type is not None else
                         next(iter(self.kwargs)) if self.kwargs else "adapt")
                raise ManyProblems([((extra,), (f"a layer that shares {self.shares!r} takes "
                                               "its type and settings from it; give only name, "
                                               "shares and inputs"))], ((extra,),))
            return self
        if self.type is None:
            raise ValueError("a layer needs `type:` (a keras.layers class), or `shares:` the "
                             "name of a layer whose weights it reuses")
        found = layer_problems(self.type, self.kwargs, self.adapt)
        if found:
            raise ManyProblems(found, unknown_keys(self.type, self.kwargs))
        return self

    def references(self) -> list[tuple[tuple[Any, ...], str]]:
        """(location in this layer, name) of everything it takes."""
        if isinstance(self.inputs, str):
            return [(("inputs",), self.inputs)]
        if isinstance(self.inputs, list):
            return [(("inputs", i), name) for i, name in enumerate(self.inputs)]
        return [(("inputs", key), name) for key, name in self.inputs.items()]

    @property
    def frozen(self) -> bool:
        return self.kwargs.get("trainable") is False


class GraphModel(StrictModel):
    """A functional model: named inputs, layers that name what they take, named outputs."""

    kind: ClassVar[str] = "graph"

    inputs: dict[str, InputSpec] = Field(
        min_length=1, description="The model's inputs by name: {story: {shape: [20], dtype: "
                                  "int32}}. Named inputs take the data arrays of that name.")
    layers: list[NodeSpec] = Field(min_length=1, description="The layers, in any order.")
    outputs: list[str] = Field(
        min_length=1, description="Names of the layers whose results the model returns; with "
                                  "several, compile's loss and metrics are given per output.")
    unfreeze: list[UnfreezeSpec] = Field(
        default_factory=list, description="Stages that unfreeze layers declared `trainable: "
                                          "false` after some epochs.")

    @field_validator("outputs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _graph(self) -> GraphModel:
        found = graph_problems(self)
        frozen = {node.name: node.frozen for node in self.layers if node.shares is None}
        found += unfreeze_problems(self.unfreeze, frozen)
        if found:
            raise ManyProblems(found)
        return self

    def output_names(self) -> list[str]:
        return list(self.outputs)

    def order(self) -> list[int]:
        """Layer indexes in an order where each comes after everything it takes."""
        return _topological(self)[0]


def _topological(graph: GraphModel) -> tuple[list[int], list[list[int]]]:
    """(order of the acyclic part, cycles found as lists of layer indexes)."""
    index = {node.name: i for i, node in enumerate(graph.layers)}
    deps = {i: [index[name] for _, name in node.references() if name in index]
            + ([index[node.shares]] if node.shares in index else [])
            for i, node in enumerate(graph.layers)}
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done
    order: list[int] = []
    cycles: list[list[int]] = []

    def visit(i: int, path: list[int]) -> None:
        state[i] = 1
        for j in deps[i]:
            if state.get(j) == 1:
                cycles.append(path[path.index(j):] + [i] if j in path else [i])
            elif j not in state:
                visit(j, path + [i])
        state[i] = 2
        order.append(i)

    for i in range(len(graph.layers)):
        if i not in state:
            visit(i, [])
    return order, cycles


def graph_problems(graph: GraphModel) -> Found:
    found: Found = []
    names = list(graph.inputs)
    seen = set(names)
    for i, node in enumerate(graph.layers):
        if node.name in seen:
            what = "an input" if node.name in graph.inputs else "an earlier layer"
            found.append((("layers", i, "name"), (f"the name {node.name!r} is already taken by "
                                                 f"{what}; every input and layer needs its own")))
        else:
            names.append(node.name)
        seen.add(node.name)
    layer_names = {node.name: node for node in graph.layers}
    used: set[str] = set(graph.outputs)
    # A misspelt reference leaves the name it meant unused: one mistake, reported once.
    used.update(hit for name in [*graph.outputs, *(n for node in graph.layers
                                                  for _, n in node.references())]
                if name not in names for hit in close_matches(name, names, n=1))
    for i, node in enumerate(graph.layers):
        for where, name in node.references():
            used.add(name)
            if name not in seen:
                found.append((("layers", i, *where),
                              (f"layer {node.name!r} takes {name!r}, which is neither an input "
                              f"nor a layer{did_you_mean(name, names)}; names: "
                              f"{', '.join(names)}")))
            elif name == node.name:
                found.append((("layers", i, *where), f"layer {node.name!r} takes itself"))
        if node.shares is not None:
            target = layer_names.get(node.shares)
            if target is None:
                found.append((("layers", i, "shares"),
                              (f"layer {node.name!r} shares {node.shares!r}, which is not a "
                              f"layer{did_you_mean(node.shares, list(layer_names))}")))
            elif target.shares is not None:
                found.append((("layers", i, "shares"),
                              (f"{node.shares!r} itself shares {target.shares!r}; share "
                              f"{target.shares!r} directly")))
    for cycle in _topological(graph)[1]:
        if len(cycle) == 1 and any(name == graph.layers[cycle[0]].name
                                   for _, name in graph.layers[cycle[0]].references()):
            continue  # a layer that takes itself: said above, once
        path = " -> ".join(graph.layers[i].name for i in cycle)
        first = min(cycle)
        found.append((("layers", first, "inputs"),
                       (f"layers {path} form a cycle: a layer can only take what is computed "
                       "before it")))
    for j, name in enumerate(graph.outputs):
        if name not in seen:
            found.append((("outputs", j), (f"output {name!r} is neither a layer nor an input"
                                          f"{did_you_mean(name, names)}; layers: "
                                          f"{', '.join(layer_names)}")))
    for i, node in enumerate(graph.layers):
        if node.adapt == "targets" and node.name not in graph.outputs:
            found.append((("layers", i, "adapt"),
                          (f"adapt: targets learns an output's targets; {node.name!r} is not "
                           f"an output (outputs: {', '.join(graph.outputs)})")))
    for name in graph.inputs:
        if name not in used:
            found.append((("inputs", name), f"input {name!r} is never used: no layer takes it"))
    for i, node in enumerate(graph.layers):
        if node.name not in used:
            found.append((("layers", i, "name"),
                          (f"layer {node.name!r} is never used: no layer takes it and it is not "
                          f"an output (outputs: {', '.join(graph.outputs)})")))
    return found
