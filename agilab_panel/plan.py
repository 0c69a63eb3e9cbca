"""The work plan: partitions spread over worker slots, saved as ``distribution_tree.json``.

Balancing minimises the heaviest slot's load: an exact search for small inputs, greedy
largest-first otherwise. The saved plan records the args and worker map it was built for, so RUN can
reuse an edited plan while it still matches and say why when it must rebuild.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .fsutil import atomic_write_text
from .hosts import slot_ids, validate_workers
from .runtime.base import Partition

__all__ = ["Partition", "WorkPlan", "PlanError", "balance", "build_plan", "args_fingerprint"]

EXACT_LIMIT = 12  # partitions; beyond this the greedy heuristic is used
PLAN_SCHEMA = "agilab.distribution_tree.v1"


class PlanError(ValueError):
    """An edit or a file that does not make a valid plan."""


def args_fingerprint(args: Mapping[str, Any]) -> str:
    text = json.dumps(dict(args), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _json_data(value: Any, what: str, *, text_fallback: bool = False) -> Any:
    """``value`` as it comes back from ``distribution_tree.json``: tuples become lists, numpy values
    plain numbers, paths strings. Done once when a plan is built, so a fresh plan and a saved one hand
    the workers the same values in every mode (local runs send JSON, Dask runs pickle)."""
    def default(obj: Any) -> Any:
        if isinstance(obj, PurePath):
            return str(obj)
        if hasattr(obj, "tolist"):  # numpy scalars and arrays
            return obj.tolist()
        if text_fallback:
            return str(obj)
        raise TypeError(f"a {type(obj).__name__} value ({obj!r}) is not JSON data")

    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{what}: {exc}") from exc


def _check_fields(label: Any, weight: Any, payload: Any) -> None:
    """A text label, a finite non-negative weight and a mapping payload, or a PlanError naming the partition."""
    if not isinstance(label, str) or not label:
        raise PlanError(f"partition label {label!r} must be a non-empty string")
    kind = type(weight)  # int and float first: the abstract checks cost more than the rest of a plan's load
    if ((kind is not float and kind is not int and (isinstance(weight, bool) or not isinstance(weight, numbers.Real)))
            or not math.isfinite(weight) or weight < 0):
        raise PlanError(f"partition {label!r} has weight {weight!r}: a weight must be a finite number, not negative")
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise PlanError(f"partition {label!r}: payload must be a mapping, not {type(payload).__name__}")


def _checked_partition(label: Any, weight: Any, payload: Any) -> Partition:
    """A partition with a text label, a finite non-negative weight and a JSON payload, or a PlanError naming it."""
    _check_fields(label, weight, payload)
    return Partition(label, float(weight), _json_data(dict(payload), f"partition {label!r} payload"))


_ENCODE = json.JSONEncoder(default=str).encode


def _plan_text(data: Mapping[str, Any]) -> str:
    """The plan as JSON with one entry of each top-level list or mapping per line (easy to edit by hand).

    ``indent=2`` goes through the pure-Python encoder, half the cost of a 10,000-host plan; here each
    line is encoded by the C encoder."""
    def block(value: Any) -> str:
        if isinstance(value, Mapping) and value:
            return "{\n" + ",\n".join(f"    {_ENCODE(str(k))}: {_ENCODE(v)}" for k, v in value.items()) + "\n  }"
        if isinstance(value, list) and value:
            return "[\n" + ",\n".join(f"    {_ENCODE(v)}" for v in value) + "\n  ]"
        return _ENCODE(value)

    return "{\n" + ",\n".join(f"  {_ENCODE(str(k))}: {block(v)}" for k, v in data.items()) + "\n}\n"


def _checked_partitions(items: Sequence[tuple[Any, Any, Any]], *, json_data: bool = False) -> list[Partition]:
    """``_checked_partition`` of each (label, weight, payload), with one JSON round trip for all the
    payloads (one per partition cost more than the balancing); when it fails, each payload is checked
    alone so that the error names the partition to blame. ``json_data``: the payloads were just read
    from JSON, so they are JSON data already (no round trip)."""
    for item in items:
        _check_fields(*item)
    if json_data:
        return [Partition(label, float(weight), dict(payload)) for label, weight, payload in items]
    try:
        payloads = _json_data([dict(payload) for _, _, payload in items], "partition payloads")
    except PlanError:
        return [_checked_partition(*item) for item in items]
    return [Partition(label, float(weight), payload) for (label, weight, _), payload in zip(items, payloads)]


def _greedy(weights: Sequence[float], slots: int) -> list[int]:
    """Largest first, each to the least loaded slot (lowest index on ties): a heap keeps this
    O(P log S), where scanning every slot per partition grew with partitions times slots."""
    heap = [(0.0, s) for s in range(slots)]  # already a heap: equal loads, increasing index
    owner = [0] * len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, s = heap[0]
        owner[i] = s
        heapq.heapreplace(heap, (load + weights[i], s))
    return owner


def _exact(weights: Sequence[float], slots: int) -> list[int]:
    """Branch and bound on the makespan, seeded with the greedy answer."""
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    best_owner = _greedy(weights, slots)
    best = max(_loads(weights, best_owner, slots))
    lower = max(max(weights, default=0.0), sum(weights) / slots)
    loads = [0.0] * slots
    owner = [0] * len(weights)

    def search(k: int) -> None:
        nonlocal best, best_owner
        if best <= lower + 1e-12:
            return
        if k == len(order):
            span = max(loads)
            if span < best - 1e-12:
                best, best_owner = span, list(owner)
            return
        i = order[k]
        seen: set[float] = set()
        for s in range(slots):
            if loads[s] in seen:  # symmetric slots give the same subtree
                continue
            seen.add(loads[s])
            if loads[s] + weights[i] >= best - 1e-12:
                continue
            loads[s] += weights[i]
            owner[i] = s
            search(k + 1)
            loads[s] -= weights[i]

    search(0)
    return best_owner


def _loads(weights: Sequence[float], owner: Sequence[int], slots: int) -> list[float]:
    loads = [0.0] * slots
    for w, s in zip(weights, owner):
        loads[s] += w
    return loads


def balance(weights: Sequence[float], slots: int) -> list[int]:
    """Slot index for each weight, minimising the heaviest slot."""
    if slots <= 0:
        raise PlanError("there must be at least one worker slot")
    bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0]
    if bad:
        raise PlanError(f"partition weights must be finite numbers, not negative: got {bad[0]!r}")
    if len(weights) <= EXACT_LIMIT:
        return _exact(list(weights), slots)
    return _greedy(list(weights), slots)


@dataclass
class WorkPlan:
    """Partitions assigned to worker slots (``host-i``), with what the plan was built for."""

    app: str
    workers: dict[str, int]
    args: dict[str, Any]
    partitions: list[Partition]
    assignment: dict[str, str]  # partition label -> slot id
    edited: bool = False
    created: float = field(default_factory=time.time)
    data_in: str = ""
    data_out: str = ""

    # -- queries ---------------------------------------------------------------------------------
    @property
    def slots(self) -> list[str]:
        return slot_ids(self.workers)

    def partition(self, label: str) -> Partition:
        for p in self.partitions:
            if p.label == label:
                return p
        raise PlanError(f"no partition labelled {label!r}")

    def has_slot(self, slot: str) -> bool:
        """Whether ``slot`` is one of this plan's slot ids, without listing them all."""
        host, _, index = slot.rpartition("-")
        return host in self.workers and index.isdigit() and str(int(index)) == index and int(index) < self.workers[host]

    def by_slot(self) -> dict[str, list[Partition]]:
        """Each slot's partitions, in plan order; empty slots included."""
        out: dict[str, list[Partition]] = {s: [] for s in self.slots}
        for p in self.partitions:
            out[self.assignment[p.label]].append(p)
        return out

    def loads(self) -> dict[str, float]:
        return {s: sum(p.weight for p in parts) for s, parts in self.by_slot().items()}

    def host_of(self, slot: str) -> str:
        return slot.rsplit("-", 1)[0]

    def mismatch(self, args: Mapping[str, Any], workers: Mapping[str, int], data_in: str | None = None) -> str | None:
        """Why this plan does not fit ``args``, ``workers`` and ``data_in`` (None when it does)."""
        if data_in is not None and self.data_in and str(data_in) != self.data_in:
            return f"the input folder changed ({self.data_in} -> {data_in})"
        if args_fingerprint(args) != args_fingerprint(self.args):
            changed = sorted(k for k in set(args) | set(self.args) if args.get(k) != self.args.get(k))
            return f"the args changed ({', '.join(changed)})"
        if dict(workers) != self.workers:
            return f"the worker map changed ({self.workers} -> {dict(workers)})"
        return None

    # -- edits -----------------------------------------------------------------------------------
    def reassign(self, label: str, slot: str) -> None:
        """Move one partition to another worker slot."""
        if label not in self.assignment:  # a dict look-up: moving many partitions stays linear
            raise PlanError(f"no partition labelled {label!r}")
        if not self.has_slot(slot):
            raise PlanError(f"no worker slot {slot!r}; slots are {', '.join(self.slots)}")
        if self.assignment[label] != slot:
            self.assignment[label] = slot
            self.edited = True

    def reassign_many(self, moves: Mapping[str, str]) -> None:
        for label, slot in moves.items():
            self.reassign(label, slot)

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        by_slot = self.by_slot()  # once: per host it made the tree grow with hosts squared
        tree: dict[str, dict[str, list[str]]] = {host: {} for host in self.workers}
        for slot, parts in by_slot.items():
            tree[self.host_of(slot)][slot] = [p.label for p in parts]
        return {
            "schema": PLAN_SCHEMA,
            "app": self.app,
            "created": self.created,
            "edited": self.edited,
            "data_in": self.data_in,
            "data_out": self.data_out,
            "workers": dict(self.workers),
            "args": dict(self.args),
            "args_fingerprint": args_fingerprint(self.args),
            "partitions": [p.to_dict() for p in self.partitions],
            "assignment": dict(self.assignment),
            "tree": tree,
            "loads": {s: sum(p.weight for p in parts) for s, parts in by_slot.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, json_data: bool = False) -> WorkPlan:
        """The plan ``data`` describes (``json_data``: just parsed from JSON, so its payloads need no
        JSON round trip), or a PlanError saying what is wrong."""
        if not isinstance(data, Mapping):
            raise PlanError(f"not a work plan (a JSON {type(data).__name__}, not an object)")
        if data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"not a work plan (schema {data.get('schema')!r})")
        plan = cls(
            app=data["app"],
            workers=validate_workers(data["workers"]),
            args=dict(data["args"]),
            partitions=_checked_partitions([(p["label"], p["weight"], p.get("payload", {})) for p in data["partitions"]],
                                           json_data=json_data),
            assignment=dict(data["assignment"]),
            edited=bool(data.get("edited", False)),
            created=float(data.get("created", time.time())),
            data_in=str(data.get("data_in", "")),
            data_out=str(data.get("data_out", "")),
        )
        plan.validate(partitions=False)  # each was checked as it was read
        return plan

    def validate(self, *, partitions: bool = True) -> None:
        """Refuse a plan whose partitions (when ``partitions``) or assignment are not valid."""
        if partitions:
            _checked_partitions([(p.label, p.weight, p.payload) for p in self.partitions])
        labels = [p.label for p in self.partitions]
        if len(set(labels)) != len(labels):
            raise PlanError("partition labels must be unique")
        if set(self.assignment) != set(labels):
            raise PlanError("every partition must be assigned to exactly one worker slot")
        bad = {s for s in set(self.assignment.values()) if not self.has_slot(s)}  # each slot once
        if bad:
            raise PlanError(f"unknown worker slots {sorted(bad)}")

    def save(self, path: Path) -> Path:
        self.validate()
        atomic_write_text(Path(path), _plan_text(self.to_dict()))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> WorkPlan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PlanError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
        return cls.from_dict(data, json_data=True)


def build_plan(
    app: str,
    partitions: Sequence[Partition],
    workers: Mapping[str, int],
    args: Mapping[str, Any],
    data_in: str = "",
    data_out: str = "",
) -> WorkPlan:
    """Balance ``partitions`` over the slots of ``workers``."""
    workers = validate_workers(workers)
    slots = slot_ids(workers)
    partitions = _checked_partitions([(p.label, p.weight, p.payload) for p in partitions])
    labels = [p.label for p in partitions]
    if len(set(labels)) != len(labels):
        raise PlanError("partition labels must be unique")
    owner = balance([p.weight for p in partitions], len(slots))
    return WorkPlan(
        app=app,
        workers=workers,
        args=_json_data(dict(args), "args", text_fallback=True),  # as the saved plan's args read back
        partitions=partitions,
        assignment={p.label: slots[s] for p, s in zip(partitions, owner)},
        data_in=str(data_in),
        data_out=str(data_out),
    )
