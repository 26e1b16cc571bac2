"""One configuration source: ROS 2 parameter YAML files, read by nodes and CLI alike.

A parameter file looks like::

    policy_node:
      ros__parameters:
        spiking_ratio: 0.5
        rate_hz: 50.0

Each node (and each CLI command) describes its settings as a dataclass; the loader
fills it from the file, checking every key and type, and raises :class:`ConfigError`
naming the file and the key when something is wrong.  Nested YAML maps become nested
dataclasses (ROS sees them as dotted names, ``training.lr``).  Ranges and choices are
declared once, in the field metadata, so the ROS node can turn them into
``ParameterDescriptor`` ranges from the same place::

    spiking_ratio: float = field(default=0.5, metadata=param(range=(0.0, 1.0),
                                 description="fraction of spiking units"))

A parameter file is input from users and tools, so the loader is strict about its shape:
duplicate keys are an error (YAML would silently keep the last), and a document whose
aliases expand beyond :data:`MAX_EXPANDED_NODES` values (a "billion laughs" alias bomb) is
rejected before anything walks it.  Values echoed in error messages are cut to a few
dozen characters.  An integer where a float is declared (``spiking_ratio: 1``) is that
float, here and in the ROS parameters (:mod:`hybrid_snn_control.ros.params`).
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "MAX_EXPANDED_NODES",
    "ConfigError",
    "coerce_value",
    "flatten",
    "from_mapping",
    "load_node_params",
    "load_parameter_file",
    "param",
    "show_value",
    "to_mapping",
    "unflatten",
]

#: Values (scalars, lists, maps) a parameter file may hold once its aliases are expanded;
#: the shipped files hold a few hundred, an alias bomb of a few KB billions.
MAX_EXPANDED_NODES = 100_000

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple, _SHOW.maxdict = 2, 4, 4, 4
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 40, 40, 40


def show_value(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, in time bounded by the cut (``reprlib``),
    however large or deeply nested the value is."""
    text = _SHOW.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ConfigError(ValueError):
    """A parameter file or value is invalid; the message names the source and the key."""


def param(
    *,
    description: str = "",
    range: tuple[float, float] | None = None,
    choices: tuple[Any, ...] | None = None,
    read_only: bool = False,
) -> dict[str, Any]:
    """Field metadata shared by validation here and ROS parameter descriptors in ``ros/``."""
    return {"description": description, "range": range, "choices": choices, "read_only": read_only}


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: merged, then overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not None:
                raise ConfigError(
                    f"duplicate key {show_value(key)} at line {key_node.start_mark.line + 1} "
                    f"(first at line {first.start_mark.line + 1}): YAML would keep the last"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Values ``root`` holds with every alias expanded, counted without expanding them (a
    node's size is computed once and reused at each alias); stops counting past ``limit``."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # being counted: met again below itself = a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), limit + 1)
            open_nodes.discard(id(node))
        elif id(node) in open_nodes:
            raise ConfigError(f"line {node.start_mark.line + 1}: a recursive alias")
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _read_yaml(path: Path) -> Any:
    """The document in ``path``, after the duplicate-key and alias-expansion checks."""
    loader = _StrictLoader(path.read_text())
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        size = _expanded_size(root, MAX_EXPANDED_NODES)
        if size > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"the document expands to more than {MAX_EXPANDED_NODES} values "
                "through its aliases (&anchor / *alias): refusing to load it"
            )
        return loader.construct_document(root)
    finally:
        loader.dispose()


def load_parameter_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a ROS 2 parameter file into ``{node_name: {param: value}}`` (nested maps kept)."""
    path = Path(path)
    try:
        raw = _read_yaml(path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: top level must be a map of node names, got {type(raw).__name__}"
        )
    nodes: dict[str, dict[str, Any]] = {}
    for node, body in raw.items():
        if not isinstance(body, dict) or set(body) != {"ros__parameters"}:
            raise ConfigError(
                f"{path}: node '{node}' must contain exactly one key 'ros__parameters'"
            )
        params = body["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: '{node}.ros__parameters' must be a map")
        nodes[str(node)] = params
    return nodes


def _node_matches(key: str, node_name: str) -> bool:
    key = key.strip()
    if key in ("/**", "**"):
        return True
    return key.lstrip("/").split("/")[-1] == node_name


def load_node_params(
    path: str | Path,
    node_name: str,
    cls: type[T],
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from the sections of ``path`` that apply to ``node_name``.

    Wildcard sections (``/**``) apply first, then the node's own; ``overrides``
    (e.g. from the command line, dotted names allowed) last.  A file with no section for
    the node gives the dataclass defaults.
    """
    merged: dict[str, Any] = {}
    sections = load_parameter_file(path)
    for key in sorted(sections, key=lambda k: k.strip().lstrip("/") != "**"):
        if _node_matches(key, node_name):
            _deep_update(merged, sections[key])
    if overrides:
        _deep_update(merged, unflatten(overrides))
    return from_mapping(cls, merged, source=f"{path} [{node_name}]")


def _deep_update(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = dict(v) if isinstance(v, Mapping) else v


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """ROS dotted parameter names → nested map (the inverse of :func:`flatten`)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        cur = out
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


def from_mapping(cls: type[T], values: Mapping[str, Any], source: str = "<mapping>") -> T:
    """Validate ``values`` against dataclass ``cls``; unknown keys and bad types raise."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    try:
        return _build(cls, values, prefix="")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _build(cls: type[T], values: Any, prefix: str) -> T:
    if not isinstance(values, Mapping):
        where = f"parameter '{prefix.rstrip('.')}'" if prefix else "parameters"
        raise ConfigError(f"{where} must be a map, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(
        k if isinstance(k, str) and len(k) <= 60 else show_value(k, 60) for k in values
    )
    unknown = [k for k in unknown if k not in fields]
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(prefix + u for u in unknown[:10])}; "
            f"known: {', '.join(sorted(prefix + f for f in fields))}"
        )
    kwargs = {
        name: coerce_value(value, hints[name], prefix + name, fields[name].metadata)
        for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def coerce_value(value: Any, tp: Any, name: str, meta: Mapping[str, Any]) -> Any:
    """Check one value against a field type and metadata; ConfigError names the parameter."""
    key = f"parameter '{name}'"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, prefix=f"{name}.")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {list(allowed)}, got {show_value(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        errors = []
        for a in args:
            try:
                return coerce_value(value, a, name, meta)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{key} must be a list, got {type(value).__name__} {show_value(value)}"
            )
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [coerce_value(v, item_tp, f"{name}[{i}]", {}) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be a bool (true/false), got {show_value(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {show_value(value)}")
        _check_meta(value, key, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {show_value(value)}")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(f"{key} must not be NaN")
        _check_meta(value, key, meta)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {show_value(value)}")
        _check_meta(value, key, meta)
        return value
    raise ConfigError(f"{key}: unsupported parameter type {tp!r}")


def _check_meta(value: Any, key: str, meta: Mapping[str, Any]) -> None:
    rng = meta.get("range") if meta else None
    if rng is not None and not (rng[0] <= value <= rng[1]):
        raise ConfigError(f"{key} must be in [{rng[0]}, {rng[1]}], got {show_value(value)}")
    choices = meta.get("choices") if meta else None
    if choices is not None and value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {show_value(value)}")


def to_mapping(obj: Any) -> dict[str, Any]:
    """A dataclass as a nested plain dict (what a parameter file holds)."""
    return dataclasses.asdict(obj)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested map → ROS dotted parameter names (``{'a': {'b': 1}}`` → ``{'a.b': 1}``)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}."))
        else:
            out[name] = v
    return out
