"""Run configuration: typed dataclasses, strict loading from TOML/JSON and ``key=value`` overrides.

A config file is TOML (or JSON) whose top level is :class:`RunConfig`; the ``[algo]`` table is
checked against the chosen algorithm's own config dataclass. Every unknown key, wrong type or bad
value is reported with its full dotted path, the value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "RunConfig",
    "EvalConfig",
    "from_dict",
    "to_dict",
    "load_config",
    "parse_overrides",
    "ConfigError",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key, type or value that is not allowed."""


@dataclass
class EvalConfig:
    """How the run is evaluated (DESIGN.md, Evaluator)."""

    splits: tuple[str, ...] = ("test",)
    """Task splits to evaluate on (``test``, and ``ood`` where the family has one)."""
    num_tasks: int = 40
    """Tasks per split."""
    seed: int = 10_000
    """Seed of the evaluation task stream (separate from training)."""
    chunk_size: int | None = None
    """Evaluate tasks in chunks of this many (memory); None = all at once."""
    every: int = 0
    """Evaluate every this many iterations during training (0: only at the end)."""
    tasks_file: str | None = None
    """A task batch in JSON (:meth:`metarl.TaskBatch.to_json`) evaluated instead of sampled
    tasks on its split, e.g. a paper's own test tasks; None: sample ``num_tasks``."""


@dataclass
class RunConfig:
    """A training run: which algorithm on which task family, for how long, logged where."""

    algorithm: str
    """Algorithm name (``metarl list`` shows them)."""
    env: str
    """Registered task family id, e.g. ``metarl/PointNav-v0``."""
    name: str | None = None
    """Run name; the run directory is ``runs/<name>__<seed>__<time>``."""
    seed: int = 1
    """Seed of every generator of the run (tasks, envs, networks, minibatches)."""
    device: str = "cpu"
    """Torch device of the rollouts and networks."""
    backend: str | None = None
    """Env backend (torch, mujoco, warp, gymnasium); None: the family's default."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the task family (e.g. ``num_arms``)."""
    total_env_steps: int = 1_000_000
    """Stop after this many environment steps."""
    checkpoint_every: int = 20
    """Save a checkpoint every this many iterations (and on exit)."""
    torch_threads: int = 1
    """Intra-op threads for torch: 1 beside MuJoCo's pool or another process; 0 uses every
    available core (torch-only families on an otherwise idle host)."""
    runs_dir: str = "runs"
    """Parent directory of run directories."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""
    algo: dict[str, Any] = field(default_factory=dict)
    """Hyperparameters of the algorithm (checked against its config class)."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}={value!r} does not fit {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}={value!r} is not allowed; choose one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a table of {_type_name(tp)} fields, got {value!r}")
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}={value!r} must be a list")
        item = args[0] if args else Any
        items = [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}={value!r} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}={value!r} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}={value!r} must be a string")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and mistyped values."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"unknown key {path}.{key}.{hint} Allowed keys: {', '.join(names)}")
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        missing = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in kwargs
        ]
        raise ConfigError(f"{path} is missing required key(s) {missing}") from err


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def load_config(path: str | Path) -> dict[str, Any]:
    """Raw config data from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.suffix == ".json":
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    raise ConfigError(f"config file {str(path)!r}: use a .toml or .json file")


def parse_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values parsed as TOML: 3, 1e-3, true, "x", [1, 2])."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. algo.lr=1e-3)")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: take it as a string
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out
