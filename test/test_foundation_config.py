"""ROS 2 parameter files → typed, validated settings (the one config source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from launch_static import ROOT

from hybrid_snn_control.config import ConfigError, load_node_params, load_parameter_file, param
from hybrid_snn_control.node_params import validate_file


@dataclass
class Limits:
    max_linear_mps: float = 0.5
    max_angular_rps: float = field(default=2.0, metadata=param(range=(0.0, 10.0)))


@dataclass
class Settings:
    spiking_ratio: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    rate_hz: float = 50.0
    steps: int = 10
    device: Literal["cpu", "cuda"] = "cpu"
    enabled: bool = True
    name: str = "policy"
    gains: list[float] = field(default_factory=lambda: [1.0, 2.0])
    limits: Limits = field(default_factory=Limits)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_values_nested_sections_and_wildcards_are_applied(tmp_path):
    p = _write(
        tmp_path,
        """
/**:
  ros__parameters:
    rate_hz: 20
policy_node:
  ros__parameters:
    spiking_ratio: 0.25
    steps: 3
    device: cuda
    gains: [3, 4.5]
    limits:
      max_angular_rps: 1.5
other_node:
  ros__parameters:
    whatever: 1
""",
    )
    s = load_node_params(p, "policy_node", Settings)
    assert s.spiking_ratio == 0.25 and s.steps == 3 and s.device == "cuda"
    assert s.rate_hz == 20.0 and isinstance(s.rate_hz, float)  # int accepted for float
    assert s.gains == [3.0, 4.5]
    assert s.limits == Limits(max_linear_mps=0.5, max_angular_rps=1.5)
    # namespaced section names match the node name too; overrides win
    p2 = _write(tmp_path, "/robot/policy_node:\n  ros__parameters:\n    steps: 7\n")
    s2 = load_node_params(p2, "policy_node", Settings, overrides={"limits.max_linear_mps": 1})
    assert s2.steps == 7 and s2.limits.max_linear_mps == 1.0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("spiking_ratio: 1.5", "'spiking_ratio' must be in [0.0, 1.0]"),
        ("spiking_ratio: .nan", "'spiking_ratio' must not be NaN"),
        ("steps: 2.5", "'steps' must be an integer"),
        ("steps: true", "'steps' must be an integer"),
        ("enabled: 1", "'enabled' must be a bool"),
        ("device: tpu", "'device' must be one of ['cpu', 'cuda']"),
        ("name: 3", "'name' must be a string"),
        ("gains: 3", "'gains' must be a list"),
        ("gains: [1, x]", "'gains[1]' must be a number"),
        ("spiking_rato: 0.1", "unknown parameter(s) spiking_rato"),
        ("limits: {max_angular_rps: 11}", "'limits.max_angular_rps' must be in [0.0, 10.0]"),
        ("limits: {speed: 1}", "unknown parameter(s) limits.speed"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path, body, fragment):
    p = _write(tmp_path, f"policy_node:\n  ros__parameters:\n    {body}\n")
    with pytest.raises(ConfigError) as exc:
        load_node_params(p, "policy_node", Settings)
    assert fragment in str(exc.value)
    assert str(p) in str(exc.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("policy_node: {ros__parameters: [1, 2]}", "must be a map"),
        ("policy_node: {params: {a: 1}}", "exactly one key 'ros__parameters'"),
        ("- a\n- b\n", "top level must be a map"),
        ("policy_node: {ros__parameters: {a: [}", "not valid YAML"),
    ],
)
def test_malformed_files_are_rejected(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=r"params\.yaml") as exc:
        load_parameter_file(_write(tmp_path, text))
    assert fragment in str(exc.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_parameter_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_parameter_file_validates(path):
    results = validate_file(path)
    assert results and all(msg == "ok" for _, msg in results)
