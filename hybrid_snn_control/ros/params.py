"""Declare a node's parameters from its settings dataclass, and validate every change.

The same dataclass that ``hsc`` reads from ``config/*.yaml`` (see
:mod:`hybrid_snn_control.config`) becomes the node's ROS parameters here, with
``ParameterDescriptor`` descriptions, ranges and read-only flags taken from the field
metadata.  Changes through ``ros2 param set`` (a ``SetParameters`` service call) are
checked by the same validator as the YAML loader; a bad value is rejected with the
reason and the old value stays.  Accepted changes update :attr:`ParameterBinding.values`
and call the node's hooks.

Integers given for float parameters (``spiking_ratio: 1`` in a file, ``ros2 param set
/policy_node spiking_ratio 1``) are taken as floats, as the YAML loader takes them:
rclpy itself would refuse the file at startup (``InvalidParameterTypeException``) and a
live set with a bare "Wrong parameter type", so ``hsc config check`` and ``hsc bringup``
would disagree.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from hybrid_snn_control.config import (
    ConfigError,
    coerce_value,
    flatten,
    from_mapping,
    to_mapping,
    unflatten,
)

T = TypeVar("T")

__all__ = ["ParameterBinding", "descriptor_for"]


def _field_table(cls: type, prefix: str = "") -> dict[str, tuple[Any, dict[str, Any]]]:
    """Dotted parameter name → (type, metadata) for every leaf field of ``cls``."""
    hints = typing.get_type_hints(cls)
    table: dict[str, tuple[Any, dict[str, Any]]] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            table.update(_field_table(tp, f"{prefix}{f.name}."))
        else:
            table[f"{prefix}{f.name}"] = (tp, dict(f.metadata))
    return table


def descriptor_for(name: str, tp: Any, meta: dict[str, Any]) -> ParameterDescriptor:
    """A ``ParameterDescriptor`` carrying the field's description, range and choices."""
    d = ParameterDescriptor(name=name, description=meta.get("description", ""))
    d.read_only = bool(meta.get("read_only", False))
    rng = meta.get("range")
    if rng is not None and tp is float:
        d.floating_point_range = [
            FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)
        ]
    elif rng is not None and tp is int:
        d.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=0)]
    choices = meta.get("choices")
    if choices is None and typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)
    if choices is not None:
        d.additional_constraints = f"one of {list(choices)}"
    return d


_INT_TYPES = (Parameter.Type.INTEGER, Parameter.Type.INTEGER_ARRAY)


def _is_float_type(tp: Any) -> bool:
    """``float``, or a list / tuple of floats (a DOUBLE_ARRAY parameter)."""
    if tp is float:
        return True
    args = typing.get_args(tp)
    return typing.get_origin(tp) in (list, tuple) and bool(args) and args[0] is float


def _as_float_parameter(p: Parameter) -> Parameter:
    if p.type_ is Parameter.Type.INTEGER:
        return Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
    return Parameter(p.name, Parameter.Type.DOUBLE_ARRAY, [float(v) for v in p.value])


class ParameterBinding(Generic[T]):
    """Keeps a node's settings dataclass and its ROS parameters in step.

    Parameters are declared with the dataclass defaults, overridden by what the
    ``--params-file`` / launch file gives the node, so the node sees the same values
    the CLI reads from the same YAML.
    """

    def __init__(self, node: Node, cls: type[T], defaults: T | None = None) -> None:
        self._node = node
        self._cls = cls
        self._table = _field_table(cls)
        self._hooks: dict[str, list[Callable[[Any], None]]] = {}
        base = flatten(to_mapping(defaults if defaults is not None else cls()))
        self._float_fields = {n for n in base if _is_float_type(self._table[n][0])}
        self._float_overrides(node)
        for name, value in base.items():
            tp, meta = self._table[name]
            node.declare_parameter(
                name,
                list(value) if isinstance(value, tuple) else value,
                descriptor_for(name, tp, meta),
            )
        current = {n: node.get_parameter(n).value for n in base}
        try:
            self.values: T = from_mapping(
                cls, unflatten(current), source=f"node '{node.get_name()}'"
            )
        except ConfigError as exc:
            raise ValueError(f"invalid startup parameters: {exc}") from None
        node.add_on_set_parameters_callback(self._on_set)
        add_pre_set = getattr(node, "add_pre_set_parameters_callback", None)  # Iron and later
        if add_pre_set is not None:
            add_pre_set(self._ints_as_floats)

    def _float_overrides(self, node: Node) -> None:
        """Integer overrides (``--params-file``, ``-p``) of float fields become floats before
        they are declared: rclpy checks their type against the float default.  rclpy has no
        public accessor for the overrides it will apply; ``_parameter_overrides`` is the
        dict ``declare_parameter`` reads (Humble … Rolling)."""
        overrides = getattr(node, "_parameter_overrides", None)
        if not isinstance(overrides, dict):
            return
        for name in self._float_fields:
            p = overrides.get(name)
            if p is not None and p.type_ in _INT_TYPES:
                overrides[name] = _as_float_parameter(p)

    def _ints_as_floats(self, params: list[Parameter]) -> list[Parameter]:
        """Pre-set callback: a live integer for a float field is that float (rclpy would
        reject it with "Wrong parameter type, expected '3' got '2'")."""
        return [
            _as_float_parameter(p) if p.name in self._float_fields and p.type_ in _INT_TYPES else p
            for p in params
        ]

    def on_change(self, name: str, hook: Callable[[Any], None]) -> None:
        """Call ``hook(new_value)`` when a change of ``name`` passed validation.

        ``values`` already holds the new settings when the hook runs; a hook that raises
        ``ValueError`` rejects the change with its message as the reason (``values`` is
        restored), e.g. a value the loaded model cannot take.
        """
        self._hooks.setdefault(name, []).append(hook)

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        updates: dict[str, Any] = {}
        for p in params:
            if p.name not in self._table:
                continue  # e.g. use_sim_time: owned by rclpy
            tp, meta = self._table[p.name]
            if meta.get("read_only"):
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only")
            try:
                updates[p.name] = coerce_value(p.value, tp, p.name, meta)
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if updates:
            previous = self.values
            try:
                if all("." not in n for n in updates):  # the common live set: cheap
                    # (``replace`` runs __init__ / __post_init__ checks like from_mapping)
                    self.values = dataclasses.replace(previous, **updates)
                else:
                    merged = flatten(to_mapping(previous))
                    merged.update(updates)
                    self.values = from_mapping(
                        self._cls, unflatten(merged), source="set_parameters"
                    )
            except (ConfigError, ValueError, TypeError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            try:
                for name, value in updates.items():
                    for hook in self._hooks.get(name, []):
                        hook(value)
            except ValueError as exc:
                self.values = previous
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)
