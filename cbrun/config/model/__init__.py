"""The `model:` section: one of four kinds, told apart by their keys.

    {input_shape, layers}              a Sequential stack (stack.py)
    {inputs, layers, outputs}          a functional graph (graph.py)
    {factory: mod:function, params}    your code builds it (factory.py)
    {path: file.keras}                 a saved model (saved.py)

Each kind is checked here, without TensorFlow; cbrun/engine/model/ builds it.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Discriminator, Tag

from cbrun.config.model.factory import FactoryModel
from cbrun.config.model.graph import GraphModel
from cbrun.config.model.saved import SavedModel
from cbrun.config.model.stack import StackModel

KINDS: dict[str, type[BaseModel]] = {
    cls.kind: cls for cls in (StackModel, GraphModel, FactoryModel, SavedModel)}


def model_kind(value: Any) -> str | None:
    """Which kind a `model:` mapping is: by its one distinguishing key."""
    if isinstance(value, BaseModel):
        return f"kind:{value.kind}"  # type: ignore[attr-defined]
    if not isinstance(value, dict):
        return None
    if "factory" in value:
        return "kind:factory"
    if "path" in value:
        return "kind:path"
    if "inputs" in value or "outputs" in value:
        return "kind:graph"
    return "kind:stack"


ModelConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(f"kind:{name}")] for name, cls in KINDS.items())],  # noqa: UP007
    Discriminator(model_kind, custom_error_type="model_kind",
                  custom_error_message="model must be a mapping: {input_shape, layers} (a "
                                       "stack), {inputs, layers, outputs} (a graph), {factory, "
                                       "params} or {path}"),
]
