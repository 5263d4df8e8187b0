"""Reading graph files: safe YAML only, every mapping remembering the line of each key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import GraphValidationError, Issue
from .spec import GraphSpec, NodeSpec, ParamSpec, PortRef
from ..params import GRAPH_PARAM_TYPES

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_TOP_KEYS = ("name", "description", "params", "nodes", "outputs")
_PARAM_KEYS = ("type", "default", "required", "doc", "choices")
_NODE_KEYS = ("type", "params", "inputs", "doc", "when")


class LineDict(dict):
    """A dict from YAML that knows its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records lines and refuses duplicate keys (YAML silently keeps the last)."""

    def __init__(self, stream, file: str | None):
        super().__init__(stream)
        self.file = file
        self.issues: list[Issue] = []

    def construct_mapping(self, node, deep=False):  # noqa: D401 - yaml API
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in mapping:
                self.issues.append(Issue(
                    f"duplicate key '{key}' (first at line {mapping.key_lines[key]}); "
                    "each key may appear once", self.file, line))
                continue
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.key_lines[key] = line
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def _line(d: Any, key: str | None = None) -> int | None:
    if isinstance(d, LineDict):
        return d.key_lines.get(key, d.line) if key is not None else d.line
    return None


def read_yaml(text: str, file: str | None = None) -> tuple[Any, list[Issue]]:
    loader = _Loader(text, file)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        # Tags such as !!python/object are refused by the safe constructor: never run code.
        raise GraphValidationError([Issue(f"invalid YAML: {exc.problem or exc}", file, line)]) from None
    except yaml.YAMLError as exc:
        raise GraphValidationError([Issue(f"invalid YAML: {exc}", file)]) from None
    finally:
        loader.dispose()
    return data, loader.issues


def parse_port_ref(text: Any, line: int | None) -> PortRef | None:
    if not isinstance(text, str) or text.count(".") != 1:
        return None
    node, port = text.split(".")
    if not node or not port:
        return None
    return PortRef(node, port, line)


def load_graph(source: str | Path | dict, *, name: str | None = None) -> GraphSpec:
    """Load a graph from a file path, a YAML string or a dict.

    :raises GraphValidationError: with every structural problem found (not yet checked against
        the registered node types: that is :func:`avflow.graph.validate.validate`).
    """
    data, file, base_dir, issues = _read_source(source)

    def issue(msg: str, line: int | None = None, **kw) -> None:
        issues.append(Issue(msg, file, line, **kw))

    if not isinstance(data, dict):
        raise GraphValidationError([Issue("a graph must be a mapping with 'nodes' (and optionally "
                                          "'name', 'params', 'outputs')", file, 1)])
    for key in data:
        if key not in _TOP_KEYS:
            issue(f"unknown top-level key '{key}'; valid: {', '.join(_TOP_KEYS)}", _line(data, key))
    graph_name = str(data.get("name") or name or (Path(file).stem if file else "graph"))
    params = _parse_params(data, issue)
    nodes = _parse_nodes(data, issue)
    outputs = _parse_outputs(data, issue)
    if issues:
        raise GraphValidationError(issues, graph=graph_name)
    return GraphSpec(name=graph_name, nodes=nodes, params=params, outputs=outputs,
                     description=str(data.get("description", "") or ""), file=file, base_dir=base_dir)


def _read_source(source: str | Path | dict) -> tuple[Any, str | None, str | None, list[Issue]]:
    """``(data, file, base_dir, issues)`` of a path, a YAML string or a dict."""
    if isinstance(source, dict):
        return source, None, None, []
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.is_file():
            raise GraphValidationError([Issue(f"graph file not found: {path}")])
        file = str(path)
        data, issues = read_yaml(path.read_text(encoding="utf-8"), file)
        return data, file, str(path.resolve().parent), issues
    data, issues = read_yaml(str(source), None)
    return data, None, None, issues


def _parse_params(data: dict, issue: Callable[..., None]) -> dict[str, ParamSpec]:
    params: dict[str, ParamSpec] = {}
    raw_params = data.get("params") or {}
    if not isinstance(raw_params, dict):
        issue("'params' must be a mapping of name -> {type, default, required, doc}", _line(data, "params"))
        raw_params = {}
    for pname, pdef in raw_params.items():
        line = _line(raw_params, pname)
        if not isinstance(pdef, dict):
            # Shorthand: `width: 640` declares a param with that default and its type.
            pdef = {"default": pdef}
        for key in pdef:
            if key not in _PARAM_KEYS:
                issue(f"param '{pname}': unknown key '{key}'; valid: {', '.join(_PARAM_KEYS)}", _line(pdef, key))
        ptype = pdef.get("type")
        if ptype is None:
            default = pdef.get("default")
            ptype = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                     dict: "dict"}.get(type(default), "any")
        if ptype not in GRAPH_PARAM_TYPES:
            issue(f"param '{pname}': unknown type '{ptype}'; valid: {', '.join(GRAPH_PARAM_TYPES)}",
                  _line(pdef, "type") or line)
            ptype = "any"
        params[pname] = ParamSpec(
            name=pname, type=ptype, default=pdef.get("default"),
            required=bool(pdef.get("required", False)), doc=str(pdef.get("doc", "") or ""),
            choices=list(pdef["choices"]) if isinstance(pdef.get("choices"), list) else None,
            line=line,
        )
    return params


def _parse_nodes(data: dict, issue: Callable[..., None]) -> dict[str, NodeSpec]:
    nodes: dict[str, NodeSpec] = {}
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        issue("'nodes' must be a non-empty mapping of node id -> {type, params, inputs}",
              _line(data, "nodes") or 1)
        raw_nodes = {}
    for node_id, ndef in raw_nodes.items():
        line = _line(raw_nodes, node_id)
        if not isinstance(node_id, str) or not _ID.match(node_id):
            issue(f"invalid node id {node_id!r}: use letters, digits, '_' and '-'", line)
        elif not isinstance(ndef, dict):
            issue(f"node '{node_id}' must be a mapping with 'type'", line, node=node_id)
        else:
            nodes[node_id] = _parse_node(node_id, ndef, line, issue)
    return nodes


def _parse_node(node_id: str, ndef: dict, line: int | None, issue: Callable[..., None]) -> NodeSpec:
    for key in ndef:
        if key not in _NODE_KEYS:
            issue(f"unknown key '{key}'; valid: {', '.join(_NODE_KEYS)}", _line(ndef, key), node=node_id)
    ntype = ndef.get("type")
    if not isinstance(ntype, str) or not ntype:
        issue("missing 'type' (the registered node type, see `avflow nodes`)", line, node=node_id)
        ntype = ""
    nparams = ndef.get("params") or {}
    if not isinstance(nparams, dict):
        issue("'params' must be a mapping", _line(ndef, "params"), node=node_id)
        nparams = {}
    ninputs: dict[str, list[PortRef]] = {}
    input_lines: dict[str, int] = {}
    raw_inputs = ndef.get("inputs") or {}
    if not isinstance(raw_inputs, dict):
        issue("'inputs' must be a mapping of input port -> 'node.port'", _line(ndef, "inputs"), node=node_id)
        raw_inputs = {}
    for port, src in raw_inputs.items():
        pline = _line(raw_inputs, port)
        input_lines[port] = pline
        refs = []
        for s in src if isinstance(src, list) else [src]:
            ref = parse_port_ref(s, pline)
            if ref is None:
                issue(f"input source {s!r} must be written 'node.port'", pline, node=node_id,
                      node_type=ntype or None, field=port)
            else:
                refs.append(ref)
        ninputs[port] = refs
    return NodeSpec(id=node_id, type=ntype, params=dict(nparams), inputs=ninputs,
                    doc=str(ndef.get("doc", "") or ""), when=ndef.get("when"), line=line,
                    param_lines={k: _line(nparams, k) for k in nparams}, input_lines=input_lines)


def _parse_outputs(data: dict, issue: Callable[..., None]) -> dict[str, PortRef]:
    outputs: dict[str, PortRef] = {}
    raw_outputs = data.get("outputs") or {}
    if not isinstance(raw_outputs, dict):
        issue("'outputs' must be a mapping of name -> 'node.port'", _line(data, "outputs"))
        raw_outputs = {}
    for oname, src in raw_outputs.items():
        ref = parse_port_ref(src, _line(raw_outputs, oname))
        if ref is None:
            issue(f"output '{oname}': {src!r} must be written 'node.port'", _line(raw_outputs, oname))
        else:
            outputs[oname] = ref
    return outputs
