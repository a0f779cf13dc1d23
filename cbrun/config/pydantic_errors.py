"""Pydantic's validation errors, translated into Problems a user can act on.

Pydantic reports where a value failed in its own terms: the union member it tried
(`callbacks.0.EarlyStopping.patience`), both branches of `str | {type: ...}`, a bare
"Extra inputs are not permitted". This module keeps the locations the user wrote, names
what a mapping takes instead of an unknown key, suggests close names, and points a rule on
a whole mapping at the key it names.
"""

from __future__ import annotations

import re
import types
import typing
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, Discriminator, Tag, ValidationError

from cbrun.config.base import BRANCH_TAGS, ManyProblems
from cbrun.config.misplaced import home_of
from cbrun.config.positions import Positions
from cbrun.config.root import RunConfig
from cbrun.errors import Problem, format_loc
from cbrun.suggest import did_you_mean

# The model the errors' locations start from: a config file, or another file read the same
# way (a sweep file).
_ROOT: ContextVar[type[BaseModel]] = ContextVar("root", default=RunConfig)

# Pydantic inserts the chosen union member into an error's location: the tag of a tagged
# union (callbacks.0.EarlyStopping.patience, compile.optimizer.as-mapping.type) or the name
# of a plain type it tried (str, int, list[int]), or the model form's tag (kind:graph);
# users never wrote them.
_UNION_MEMBER_PREFIXES = ("kind:", "function-", "literal[", "json-or-python", "lax-or-strict")
_UNION_MEMBER_NAMES = {"str", "int", "float", "bool", "list", "dict", "list[int]",
                       "tagged-union", "none", *BRANCH_TAGS}
_QUOTED = re.compile(r"'([^'\s]+)'|`([^`\s]+)`")


def _user_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the union-member parts of a pydantic location, keeping what is in the file."""
    out: list[Any] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and (part in _UNION_MEMBER_NAMES
                                        or part.startswith(_UNION_MEMBER_PREFIXES)
                                        or (isinstance(node, dict)
                                            and part in (node.get("type"), node.get("kind"),
                                                         node.get("source")))
                                        or part == node):  # `key: tag`, short for {type: tag}
            continue
        else:
            out.append(part)  # a missing key: point at it (its parent's position is used)
            node = None
    return tuple(out)


def _get(data: Any, loc: tuple[Any, ...]) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# ---------------------------------------------------------------- which model sits where

def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated/Optional/Union down to the member that fits what the user wrote."""
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation = _tagged_member(args, node) or args[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_unwrap(a, node) for a in typing.get_args(annotation)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(node, dict) and models:
            for model in models:
                if any(node.get(key) == value for key, value in _tags(model)):
                    return model
            return models[0] if len(models) == 1 else None
        lists = [m for m in members if typing.get_origin(m) is list]
        if isinstance(node, list) and lists:
            return lists[0]
        return None
    return annotation


def _tagged_member(args: tuple[Any, ...], node: Any) -> Any:
    """The member a callable Discriminator picks for `node` (model: stack, graph...)."""
    disc = next((m for m in args[1:] if isinstance(m, Discriminator)
                 and callable(m.discriminator)), None)
    if disc is None:
        return None
    tag = disc.discriminator(node)
    for member in typing.get_args(args[0]):
        if typing.get_origin(member) is typing.Annotated and any(
                isinstance(m, Tag) and m.tag == tag for m in typing.get_args(member)[1:]):
            return typing.get_args(member)[0]
    return None


def _tags(model: type[BaseModel]) -> list[tuple[str, Any]]:
    """The (field, value) pairs a discriminated union can pick this model by."""
    found = []
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is typing.Literal:
            args = typing.get_args(info.annotation)
            if len(args) == 1:
                found.append((info.alias or name, args[0]))
    return found


def _tag(model: type[BaseModel]) -> str | None:
    return next((value for key, value in _tags(model) if key == "type"), None)


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _model_at(loc: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    annotation: Any = _ROOT.get()
    node = data
    for part in loc:
        annotation = _unwrap(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = _field(annotation, part)
            if info is None:
                return None
            annotation = info.annotation
            for meta in info.metadata:  # pydantic keeps a field's Discriminator apart
                if isinstance(meta, Discriminator):
                    annotation = typing.Annotated[annotation, meta]
        elif typing.get_origin(annotation) is list and isinstance(part, int):
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
        node = _get(node, (part,))
    annotation = _unwrap(annotation, node)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def _key_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _where(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    tag = _tag(model)
    if tag is not None:
        return tag
    return format_loc(loc) if loc else "the top level"


# ---------------------------------------------------------------- pydantic errors -> Problems

def _describe(err: dict[str, Any], loc: tuple[Any, ...], data: Any) -> tuple[tuple, str, bool]:
    """(location, message, points-at-the-key) for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        model = _model_at(parent, data)
        if model is None:
            return loc, "unknown key", True
        names = [n for n in _key_names(model) if n != "type"]
        home = home_of(str(loc[-1]), parent) if len(parent) <= 1 else None
        if home is not None:
            where = format_loc(home) if len(home) > 1 else f"the top level ({home[0]}:)"
            return loc, (f"{loc[-1]!r} is not a key of {_where(parent, model)}: it belongs to "
                         f"{where}; {_where(parent, model)} takes: {', '.join(names)}"), True
        takes = f"takes: {', '.join(names)}" if names else "takes no key besides type"
        return loc, (f"unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), names)}; "
                     f"{_where(parent, model)} {takes}"), True
    if kind == "missing":
        model = _model_at(loc[:-1], data)
        info = _field(model, loc[-1]) if model is not None else None
        what = f" ({info.description})" if info is not None and info.description else ""
        owner = _where(loc[:-1], model) if model is not None else format_loc(loc[:-1])
        return loc, f"{owner} needs {loc[-1]!r}, which is missing{what}", False
    disc = str(ctx.get("discriminator", "'type'")).strip("'")
    is_callback = loc[:1] == ("callbacks",) and len(loc) == 2 and disc == "type"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        if is_callback:
            return loc + (disc,), (f"unknown callback type {tag!r}{did_you_mean(tag, expected)}"
                                   f"; `cbrun callbacks` lists them all"), False
        return loc + (disc,), (f"unknown {disc} {tag!r}{did_you_mean(tag, expected)}; "
                               f"expected one of: {', '.join(expected)}"), False
    if kind == "union_tag_not_found":
        if is_callback:
            return loc, ("a callback needs `type:`, the Keras callback's name (e.g. "
                         "type: EarlyStopping); `cbrun callbacks` lists them all"), False
        return loc, f"this mapping needs `{disc}:` to say which kind it is", False
    if kind == "invalid_key":
        return loc, f"keys must be words, not {type(loc[-1]).__name__} {loc[-1]!r}", True
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        given = _get(data, loc)
        return loc, f"must be a mapping of keys, not {_kind(given)}", False
    if kind == "list_type":
        return loc, f"must be a list, not {_kind(_get(data, loc))}", False
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        given = _get(data, loc)
        if isinstance(given, str):
            msg += did_you_mean(given, allowed)
        return loc, msg, False
    refined = _refine(loc, msg, data)
    return refined, msg, refined != loc and isinstance(_get(data, loc), dict)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "null (nothing)"
    return f"{type(value).__name__} {value!r}"


def _refine(loc: tuple[Any, ...], message: str, data: Any) -> tuple[Any, ...]:
    """A rule on a whole mapping or list ("Dense has no parameter 'unit'") is reported at
    the key or item it names first, which is where the user has to look."""
    node = _get(data, loc)
    if isinstance(node, dict):
        named = [(match.start(), key) for key in node
                 if isinstance(key, str) and key != "type"
                 for match in [re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message)]
                 if match]
        if named:
            return loc + (min(named)[1],)
    elif isinstance(node, list):
        for name in (a or b for a, b in _QUOTED.findall(message)):
            for index, item in enumerate(node):
                if item == name or (isinstance(item, dict) and item.get("type") == name):
                    return loc + (index,)
    return loc


def validation_problems(exc: ValidationError, data: Any, pos: Positions,
                        root: type[BaseModel] = RunConfig) -> list[Problem]:
    token = _ROOT.set(root)
    try:
        return _problems(exc, data, pos)
    finally:
        _ROOT.reset(token)


def _problems(exc: ValidationError, data: Any, pos: Positions) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for err in _prefer_matching_branch(exc.errors(include_url=False), data):
        loc = _user_loc(tuple(err["loc"]), data)
        many = (err.get("ctx") or {}).get("error")
        if isinstance(many, ManyProblems):
            for where, message in many.problems:
                if (loc + where, message) not in seen:
                    seen.add((loc + where, message))
                    given = _get(data, loc + where)
                    extra: dict[str, Any] = {} if isinstance(given, (dict, list)) \
                        else {"given": given}
                    if where in many.unknown_keys:  # point at the key; its value is noise
                        extra = {"at_key": True}
                    problems.append(pos.problem(loc + where, message, **extra))
            continue
        loc, message, at_key = _describe(err, loc, data)
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        extra: dict[str, Any] = {}
        if err["type"] not in ("missing", "extra_forbidden", "invalid_key"):
            given = err.get("input")
            if not isinstance(given, (dict, list)):  # a whole mapping is noise
                extra["given"] = given
        problems.append(pos.problem(loc, message, at_key=at_key, **extra))
    return problems


def _prefer_matching_branch(errors: list[dict[str, Any]], data: Any) -> list[dict[str, Any]]:
    """For a plain `str | dict[...]` field pydantic reports both branches; keep the one
    whose shape matches what the user wrote. (`name | {type: ...}` fields are tagged
    unions, `config.base.name_or`: pydantic itself tries only the branch that fits.)"""
    kept = []
    for err in errors:
        loc = tuple(err["loc"])
        if "str" in loc:
            cut = loc.index("str")
            wrote_mapping = isinstance(_get(data, _user_loc(loc[:cut], data)), dict)
            if wrote_mapping:
                continue
        kept.append(err)
    return kept or errors
