"""Validation: the first phase of every run. Nothing is opened or loaded here.

Resolves node types, builds every node's config (unknown, missing and mistyped params), wires
ports (unknown ports, type mismatches, inputs fed twice, unconnected required inputs), checks
the graph's outputs and sorts the nodes topologically (naming the nodes of any cycle). Every
problem is collected and raised once as :class:`GraphValidationError`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..errors import GraphValidationError, Issue
from ..node import Node
from ..payloads import Payload
from ..registry import Registry
from .spec import GraphSpec, NodeSpec, PortRef
from ..params import (GRAPH_PARAM_TYPES, ParamTypeError, check_bounds, check_choices, coerce, config_fields,
                    field_required, type_name, types_compatible)

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Unbound:
    """Marks a value that depends on a required graph param not given yet (validate only)."""

    def __init__(self, param: str):
        self.param = param

    def __repr__(self) -> str:
        return f"<unbound ${{{self.param}}}>"


@dataclass
class PlannedNode:
    """A validated node: its class, its config and how it is wired."""

    id: str
    spec: NodeSpec
    cls: type[Node]
    config: Any | None  # None when a required graph param is still unbound
    inputs: dict[str, list[PortRef]] = field(default_factory=dict)
    consumers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # out port -> (node, port)


@dataclass
class Plan:
    """A validated graph, ready to run: nodes in topological order."""

    graph: GraphSpec
    nodes: dict[str, PlannedNode]
    params: dict[str, Any]
    outputs: dict[str, PortRef]
    unbound: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # nodes switched off by their `when`

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def order(self) -> list[str]:
        return list(self.nodes)


def _close(name: str, options: list[str]) -> str:
    matches = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    return f"did you mean {', '.join(repr(m) for m in matches)}? " if matches else ""


def parse_cli_value(raw: str, tp: Any) -> Any:
    """A ``--set`` value: text for str/path types, a YAML scalar otherwise."""
    from pathlib import Path

    if tp in (str, Path) or (tp is Any and not raw.strip()):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def validate(
    spec: GraphSpec,
    registry: Registry,
    overrides: Mapping[str, Any] | None = None,
    *,
    require_all: bool = True,
    cli_strings: bool = False,
) -> Plan:
    """Check a graph against the registry and build its plan.

    :param overrides: ``{"param": value, "node_id.param": value}``.
    :param require_all: report required graph params without a value (``avflow validate``
        passes False: it checks the structure of a graph whose inputs come at run time).
    :param cli_strings: override values are raw ``--set`` text, parsed against the declared type.
    """
    v = _Validation(spec, registry, cli_strings)
    graph_over, node_over = v.split_overrides(overrides or {})
    v.bind_params(graph_over, require_all)
    disabled = {node.id for node in spec.nodes.values() if not _enabled(node, spec, v.values, v.issue)}
    v.build_configs(disabled, node_over)
    consumers, deps = v.wire(disabled)
    v.check_outputs(disabled)
    v.preflight(disabled, consumers, set(graph_over), require_all)
    order = v.sort(deps, disabled)
    if v.issues:
        raise GraphValidationError(v.issues, graph=spec.name)

    planned = {}
    for node_id in order:
        node = spec.nodes[node_id]
        inputs = {p: [r for r in refs if r.node not in disabled] for p, refs in node.inputs.items()}
        planned[node_id] = PlannedNode(
            id=node_id, spec=node, cls=v.classes[node_id], config=v.configs.get(node_id),
            inputs={p: r for p, r in inputs.items() if r}, consumers=consumers[node_id])
    outputs = {name: ref for name, ref in spec.outputs.items() if ref.node not in disabled}
    return Plan(graph=spec, nodes=planned, params=v.values, outputs=outputs, unbound=v.unbound,
                disabled=sorted(disabled))


class _Validation:
    """The steps of :func:`validate`, in order; each adds what it finds wrong to ``issues``."""

    def __init__(self, spec: GraphSpec, registry: Registry, cli_strings: bool):
        self.spec, self.registry, self.cli_strings = spec, registry, cli_strings
        self.issues: list[Issue] = []
        self.values: dict[str, Any] = {}  # graph param -> value (or _Unbound)
        self.unbound: list[str] = []
        self.classes: dict[str, type[Node]] = {}
        self.configs: dict[str, Any] = {}
        self.bad_params: set[str] = set()  # graph params already reported as wrong
        # (node id, node param) -> the graph param whose ``${name}`` is its whole value
        self.sources: dict[tuple[str, str], str] = {}

    def issue(self, msg: str, line: int | None = None, **kw) -> None:
        source = self.sources.get((kw.get("node"), kw.get("field")))
        if source is not None and "graph_param" not in kw:
            # Speak the graph's words: the user sets `source`, not the node's param.
            kw["graph_param"] = source
            line = self.spec.params[source].line or line
        issue = Issue(msg, self.spec.file, line, **kw)
        # One cause, said once: a graph param feeding several nodes is reported for the first.
        if not any(str(i) == str(issue) or (issue.graph_param and i.graph_param == issue.graph_param
                                            and i.message == issue.message) for i in self.issues):
            self.issues.append(issue)

    # -- overrides ---------------------------------------------------------------------------
    def split_overrides(self, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """``--set`` values: ``(graph param -> value, node id -> {param: value})``."""
        spec = self.spec
        graph_over: dict[str, Any] = {}
        node_over: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if "." in key:
                node_id, pname = key.split(".", 1)
                if node_id not in spec.nodes:
                    self.issue(f"--set {key}: no node '{node_id}'; {_close(node_id, list(spec.nodes))}"
                               f"nodes: {', '.join(spec.nodes)}")
                    continue
                node_over.setdefault(node_id, {})[pname] = value
            elif key in spec.params:
                graph_over[key] = value
            else:
                self.issue(f"--set {key}: no graph parameter '{key}'; {_close(key, list(spec.params))}"
                           f"parameters: {', '.join(spec.params) or '(none)'}; use NODE.PARAM for a node parameter")
        return graph_over, node_over

    # -- graph params ------------------------------------------------------------------------
    def bind_params(self, graph_over: dict[str, Any], require_all: bool) -> None:
        """Give every graph param its value: the override, else the default; typed and checked."""
        for p in self.spec.params.values():
            tp = GRAPH_PARAM_TYPES[p.type]
            if p.name in graph_over:
                value = graph_over[p.name]
                if self.cli_strings and isinstance(value, str):
                    value = parse_cli_value(value, tp)
            elif p.required:
                if require_all:
                    self.issue(f"graph parameter '{p.name}' ({p.type}) is required: pass --set {p.name}=VALUE"
                               + (f" ({p.doc})" if p.doc else ""), p.line, field=p.name)
                self.unbound.append(p.name)
                self.values[p.name] = _Unbound(p.name)
                continue
            else:
                value = p.default
            if value is not None:
                try:
                    value = coerce(value, tp)
                except ParamTypeError as exc:
                    self.issue(f"graph parameter '{p.name}': {exc}", p.line, field=p.name)
                    self.values[p.name] = _Unbound(p.name)  # reported once, not again at every use
                    self.bad_params.add(p.name)
                    continue
                problem = check_choices(value, p.choices)
                if problem:
                    self.issue(f"graph parameter '{p.name}': {problem}", p.line, field=p.name)
                    # Reported here only: the rest of the graph is checked with the default, so
                    # a `when` on this param gives no knock-on errors (an unfed input...).
                    self.values[p.name] = _Unbound(p.name)
                    self.bad_params.add(p.name)
                    continue
            self.values[p.name] = value

    # -- ${param} substitution ---------------------------------------------------------------
    def substitute(self, value: Any, line: int | None, where: dict) -> Any:
        """``value`` with its ``${param}`` references replaced (an :class:`_Unbound` if one is)."""
        if isinstance(value, str):
            whole = _REF.fullmatch(value)
            if whole:
                name = whole.group(1)
                if not self._known_param(name, line, where):
                    return _Unbound(name)
                return self.values.get(name)

            def repl(m: re.Match) -> str:
                name = m.group(1)
                if not self._known_param(name, line, where):
                    return m.group(0)
                v = self.values.get(name)
                if isinstance(v, _Unbound):
                    raise _UnboundInString(name)
                return "" if v is None else str(v)

            try:
                return _REF.sub(repl, value)
            except _UnboundInString as exc:
                return _Unbound(exc.name)
        if isinstance(value, list):
            return [self.substitute(v, line, where) for v in value]
        if isinstance(value, dict):
            return {k: self.substitute(v, line, where) for k, v in value.items()}
        return value

    def _known_param(self, name: str, line: int | None, where: dict) -> bool:
        params = self.spec.params
        if name in params:
            return True
        self.issue(f"unknown graph parameter ${{{name}}}; {_close(name, list(params))}"
                   f"parameters: {', '.join(params) or '(none)'}", line, **where)
        return False

    # -- nodes and their configs -------------------------------------------------------------
    def build_configs(self, disabled: set[str], node_over: dict[str, dict[str, Any]]) -> None:
        """Resolve every node's type and build its config (into ``classes`` and ``configs``)."""
        for node in self.spec.nodes.values():
            cls = self.registry.get(node.type) if node.type else None
            if node.id in disabled and cls is not None:
                continue  # its type exists; its params and wiring do not matter in this run
            if cls is None:
                if node.type:
                    matches = self.registry.close_matches(node.type)
                    hint = (f"did you mean {', '.join(repr(m) for m in matches)}?" if matches
                            else "see `avflow nodes` for the registered types")
                    self.issue(f"unknown node type '{node.type}'; {hint}", node.line, node=node.id)
                continue
            self.classes[node.id] = cls
            kwargs = self._node_params(node, cls, node_over.get(node.id, {}))
            if kwargs is not None:
                try:
                    self.configs[node.id] = cls.Config(**kwargs)
                except (TypeError, ValueError) as exc:  # a Config's own __post_init__ checks
                    self.issue(f"invalid parameters: {exc}", node.line, node=node.id, node_type=node.type)

    def _node_params(self, node: NodeSpec, cls: type[Node], overrides: dict[str, Any]) -> dict[str, Any] | None:
        """The typed keyword arguments of a node's Config; None if any is wrong or unbound."""
        where = {"node": node.id, "node_type": node.type}
        fields = config_fields(cls.Config)
        raw = dict(node.params)
        for pname, value in overrides.items():
            if pname not in fields:
                self.issue(f"--set {node.id}.{pname}: no parameter '{pname}'; {_close(pname, list(fields))}"
                           f"valid: {', '.join(fields) or '(none)'}", node.line, field=pname, **where)
                continue
            if self.cli_strings and isinstance(value, str):
                value = parse_cli_value(value, fields[pname][1])
            raw[pname] = value
        kwargs: dict[str, Any] = {}
        complete = True
        for pname, value in raw.items():
            line = node.param_lines.get(pname, node.line)
            if pname not in fields:
                self.issue(f"unknown parameter '{pname}'; {_close(pname, list(fields))}"
                           f"valid: {', '.join(fields) or '(none)'}", line, field=pname, **where)
                complete = False
                continue
            f, tp = fields[pname]
            whole = _REF.fullmatch(value) if isinstance(value, str) else None
            if whole and whole.group(1) in self.spec.params and pname not in overrides:
                self.sources[(node.id, pname)] = whole.group(1)
            value = self.substitute(value, line, {**where, "field": pname})
            if isinstance(value, _Unbound):
                complete = False
                gp = self.spec.params.get(value.param)
                if gp is not None and not types_compatible(GRAPH_PARAM_TYPES[gp.type], tp):
                    self.issue(f"graph parameter '{gp.name}' is {gp.type} but this parameter expects "
                               f"{type_name(tp)}", line, field=pname, **where)
                continue
            if value is None and not field_required(f) and _accepts_none(tp):
                kwargs[pname] = None
                continue
            try:
                value = coerce(value, tp)
            except ParamTypeError as exc:
                self.issue(str(exc), line, field=pname, **where)
                complete = False
                continue
            problem = check_bounds(value, f)
            if problem:
                self.issue(problem, line, field=pname, **where)
                complete = False
                continue
            kwargs[pname] = value
        for pname, (f, tp) in fields.items():
            if field_required(f) and pname not in raw:
                doc = (f.metadata or {}).get("doc", "")
                self.issue(f"missing required parameter '{pname}' ({type_name(tp)})"
                           + (f": {doc}" if doc else ""), node.line, field=pname, **where)
                complete = False
        return kwargs if complete else None

    # -- wiring ------------------------------------------------------------------------------
    def wire(self, disabled: set[str]) -> tuple[dict[str, dict[str, list[tuple[str, str]]]], dict[str, set[str]]]:
        """Check every input's sources: ``(node -> out port -> [(consumer, in port)], node -> upstream)``."""
        spec = self.spec
        consumers: dict[str, dict[str, list[tuple[str, str]]]] = {n: {} for n in spec.nodes}
        deps: dict[str, set[str]] = {n: set() for n in spec.nodes if n not in disabled}
        for node in spec.nodes.values():
            cls = self.classes.get(node.id)
            if cls is None or node.id in disabled:
                continue
            for port, all_refs in node.inputs.items():
                refs = [r for r in all_refs if r.node not in disabled]
                if refs:  # else every source is disabled by its `when`: the port is unconnected
                    for ref in self._input_sources(node, cls, port, refs):
                        consumers[ref.node].setdefault(ref.port, []).append((node.id, port))
                        deps[node.id].add(ref.node)
            self._check_required_inputs(node, cls, disabled)
        return consumers, deps

    def _input_sources(self, node: NodeSpec, cls: type[Node], port: str, refs: list[PortRef]) -> list[PortRef]:
        """The sources of one input port that exist and fit it (the others are reported)."""
        where = {"node": node.id, "node_type": node.type, "field": port}
        line = node.input_lines.get(port, node.line)
        in_port = cls.inputs.get(port)
        if in_port is None:
            self.issue(f"no input port '{port}'; {_close(port, list(cls.inputs))}"
                       f"inputs: {', '.join(cls.inputs) or '(none)'}", line, **where)
            return []
        if len(refs) > 1 and not in_port.many:
            self.issue(f"input fed {len(refs)} times ({', '.join(map(str, refs))}); "
                       "this port takes exactly one source", line, **where)
        good, seen = [], set()
        for ref in refs:
            if str(ref) in seen:
                self.issue(f"input fed twice by {ref}", line, **where)
            seen.add(str(ref))
            src_cls = self.classes.get(ref.node)
            if ref.node not in self.spec.nodes:
                self.issue(f"no node '{ref.node}' (source {ref}); {_close(ref.node, list(self.spec.nodes))}"
                           f"nodes: {', '.join(self.spec.nodes)}", line, **where)
                continue
            if src_cls is None:
                continue  # its unknown type is already reported
            out_port = src_cls.outputs.get(ref.port)
            if out_port is None:
                self.issue(f"no output '{ref.port}' on '{ref.node}'; {_close(ref.port, list(src_cls.outputs))}"
                           f"have: {', '.join(src_cls.outputs) or '(none)'}", line, **where)
                continue
            # An output typed as the base Payload is untyped (pass-through nodes); its items
            # are checked against this port at run time.
            if out_port.kind is not Payload and not issubclass(out_port.kind, in_port.kind):
                self.issue(f"type mismatch: {ref} gives {out_port.kind.__name__} but this input takes "
                           f"{in_port.kind.__name__}", line, **where)
                continue
            good.append(ref)
        return good

    def _check_required_inputs(self, node: NodeSpec, cls: type[Node], disabled: set[str]) -> None:
        where = {"node": node.id, "node_type": node.type}
        for port, p in cls.inputs.items():
            fed = [r for r in node.inputs.get(port, []) if r.node not in disabled]
            if p.optional or fed:
                continue
            if node.inputs.get(port):
                self.issue(f"required input '{port}' ({p.kind.__name__}) has no enabled source: "
                           f"{', '.join(map(str, node.inputs[port]))} are disabled by their 'when'",
                           node.line, field=port, **where)
            else:
                self.issue(f"required input '{port}' ({p.kind.__name__}) is not connected"
                           + (f": {p.doc}" if p.doc else ""), node.line, field=port, **where)

    # -- the file system --------------------------------------------------------------------
    def preflight(self, disabled: set[str], consumers: dict[str, dict[str, list[tuple[str, str]]]],
                  given: set[str], require_all: bool) -> None:
        """Each enabled node's :meth:`Node.preflight`: inputs that must exist, required model
        files; what ``run`` would otherwise find seconds in, when the node opens.

        Without ``require_all`` (``avflow validate``: values may come at run time) a path left at
        its graph default (``models: models``) is not checked; one given, or missing, is."""
        from ..node import PreflightContext

        for node_id, config in self.configs.items():
            if node_id in disabled:
                continue
            node = self.spec.nodes[node_id]
            check = PreflightContext(
                node_id=node_id,
                connected_inputs=frozenset(p for p, refs in node.inputs.items()
                                           if any(r.node not in disabled for r in refs)),
                connected_outputs=frozenset(p for p, users in consumers.get(node_id, {}).items() if users))
            for pname, problem in self.classes[node_id].preflight(config, check):
                source = self.sources.get((node_id, pname))
                if (not require_all and source is not None and source not in given
                        and getattr(config, pname, None) is not None):
                    continue
                # A file to give: say which --set gives it (the graph's param, if one feeds it).
                problem = problem.replace("@SET", f"--set {source}=PATH" if source else f"--set {node_id}.{pname}=PATH")
                self.issue(problem, node.param_lines.get(pname, node.line), node=node_id,
                           node_type=node.type, field=pname)

    # -- outputs -----------------------------------------------------------------------------
    def check_outputs(self, disabled: set[str]) -> None:
        spec = self.spec
        for oname, ref in spec.outputs.items():
            if ref.node in disabled:
                continue
            src_cls = self.classes.get(ref.node)
            if ref.node not in spec.nodes:
                self.issue(f"output '{oname}': no node '{ref.node}'; {_close(ref.node, list(spec.nodes))}"
                           f"nodes: {', '.join(spec.nodes)}", ref.line)
            elif src_cls is not None and ref.port not in src_cls.outputs:
                self.issue(f"output '{oname}': no output '{ref.port}' on '{ref.node}'; "
                           f"have: {', '.join(src_cls.outputs) or '(none)'}", ref.line)

    # -- topological order -------------------------------------------------------------------
    def sort(self, deps: dict[str, set[str]], disabled: set[str]) -> list[str]:
        """The enabled nodes, upstream first; each cycle is reported with its nodes."""
        order = _toposort(deps)
        if order is not None:
            return order
        for cycle in _cycles(deps):
            first = self.spec.nodes[cycle[0]]
            self.issue("cycle: " + " -> ".join(cycle + [cycle[0]]) + "; graphs must be acyclic",
                       first.line, node=cycle[0])
        return [n for n in self.spec.nodes if n not in disabled]


_WHEN = re.compile(r"^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*(?:(==|!=)\s*(.*?))?\s*$")
_WHEN_IN = re.compile(r"^\s*(.*?)\s+(in|not in)\s+\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*$")
_WHEN_FORMS = ("\"${flag}\", \"${name} == value\", \"${name} != value\", \"value in ${list}\" "
               "or \"value not in ${list}\"")


def _enabled(node: NodeSpec, spec: GraphSpec, values: dict[str, Any], issue) -> bool:
    """Evaluate a node's ``when``; problems are reported and leave the node enabled."""
    when = node.when
    if when is None or isinstance(when, bool):
        return when is not False
    m, m_in = _WHEN.match(str(when)), _WHEN_IN.match(str(when))
    if not m and not m_in:
        issue(f"invalid when {when!r}: write {_WHEN_FORMS}", node.line, node=node.id)
        return True
    if m:
        name, op, rhs = m.groups()
    else:
        rhs, op, name = m_in.groups()
    if name not in spec.params:
        issue(f"when: unknown graph parameter ${{{name}}}; {_close(name, list(spec.params))}"
              f"parameters: {', '.join(spec.params) or '(none)'}", node.line, node=node.id)
        return True
    value = values.get(name)
    if isinstance(value, _Unbound):
        # Validating without run-time values: a required param's node is checked as enabled.
        value = spec.params[name].default if not spec.params[name].required else None
        if value is None:
            return True
    if op is None:
        return bool(value)
    rhs = rhs.strip().strip("'\"")
    if m_in:
        if not isinstance(value, (list, tuple)):
            issue(f"when {when!r}: ${{{name}}} must be a list, got {value!r}", node.line, node=node.id)
            return True
        choices = spec.params[name].choices
        if choices is not None and rhs not in [str(c) for c in choices]:
            issue(f"when {when!r}: {rhs!r} is not one of ${{{name}}}'s choices: "
                  f"{', '.join(map(str, choices))}", node.line, node=node.id)
        return (rhs in [_text(v) for v in value]) == (op == "in")
    return (_text(value) == rhs) == (op == "==")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class _UnboundInString(Exception):
    def __init__(self, name: str):
        self.name = name


def _accepts_none(tp: Any) -> bool:
    import types
    import typing

    return tp is Any or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                         and type(None) in typing.get_args(tp))


def _toposort(deps: dict[str, set[str]]) -> list[str] | None:
    """Kahn's algorithm, stable in declaration order; None if there is a cycle."""
    remaining = {n: set(d) for n, d in deps.items()}
    order: list[str] = []
    while remaining:
        ready = [n for n, d in remaining.items() if not d]
        if not ready:
            return None
        for n in ready:
            order.append(n)
            del remaining[n]
        for d in remaining.values():
            d.difference_update(ready)
    return order


def _cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in deps[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in deps[v]:
                comps.append(comp)

    for v in deps:
        if v not in index:
            strong(v)
    cycles = []
    order = list(deps)
    for comp in comps:
        members = set(comp)
        start = min(comp, key=order.index)
        # Walk the dependency edges inside the component back to the start, in data-flow order.
        path = [start]
        seen = {start}
        cur = start
        while True:
            nxt = sorted((w for w in deps[cur] if w in members), key=order.index)
            step = next((w for w in nxt if w == start), None) or next((w for w in nxt if w not in seen), None)
            if step is None or step == start:
                break
            path.append(step)
            seen.add(step)
            cur = step
        flow = list(reversed(path))  # deps point upstream; show the cycle in data-flow order
        i = flow.index(start)
        cycles.append(flow[i:] + flow[:i])
    return cycles
