"""Graph specification: what a graph file says, with the file:line of every piece.

A graph file looks like this::

    name: transcode
    description: Re-encode a video, optionally resized.
    params:
      video: {type: path, required: true, doc: input video}
      width: {type: int, default: 640, doc: output width in pixels}
    nodes:
      decode:                       # node id
        type: media.decode
        params: {path: "${video}"}
      resize:
        type: media.resize
        inputs: {frames: decode.video}
        params: {width: "${width}"}
      mux:
        type: media.mux
        inputs: {video: resize.frames, audio: decode.audio}
        params: {path: transcoded.mp4}
    outputs:
      video: mux.file

``${name}`` in a node param refers to a graph param: alone it takes the param's typed value,
inside a longer string it is replaced by its text.

``when:`` enables a node only under a condition on graph params: ``"${save_faces}"`` (a bool),
``"${scorer} == syncnet"``, ``"${scorer} != motion"``, or for a list param
``"annotated in ${outputs}"`` / ``"annotated not in ${outputs}"``. A disabled node and its connections
are left out, so an input may list alternative sources (``[motion.scores, syncnet.scores]``)
as long as only one of them is enabled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PortRef:
    """``node.port`` as written in a graph file."""

    node: str
    port: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass
class ParamSpec:
    """A graph parameter."""

    name: str
    type: str = "any"
    default: Any = None
    required: bool = False
    doc: str = ""
    choices: list[Any] | None = None
    line: int | None = None


@dataclass
class NodeSpec:
    """One node of a graph file."""

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[PortRef]] = field(default_factory=dict)
    doc: str = ""
    when: str | bool | None = None  # "${flag}", "${name} == value", "${name} != value", "value [not] in ${list}"
    line: int | None = None
    param_lines: dict[str, int] = field(default_factory=dict)
    input_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class GraphSpec:
    """A whole graph file."""

    name: str
    nodes: dict[str, NodeSpec]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    outputs: dict[str, PortRef] = field(default_factory=dict)
    description: str = ""
    file: str | None = None  # where it was read from, for messages
    base_dir: str | None = None  # relative paths in the file are not resolved against it

    def to_dict(self) -> dict[str, Any]:
        """The graph as plain data (loadable again with :func:`avflow.load_graph`)."""
        params = {}
        for p in self.params.values():
            d: dict[str, Any] = {"type": p.type, "doc": p.doc}
            if p.required:
                d["required"] = True
            else:
                d["default"] = p.default
            if p.choices is not None:
                d["choices"] = list(p.choices)
            params[p.name] = d
        nodes = {}
        for n in self.nodes.values():
            d = {"type": n.type}
            if n.params:
                d["params"] = dict(n.params)
            if n.inputs:
                d["inputs"] = {k: (str(v[0]) if len(v) == 1 else [str(r) for r in v])
                               for k, v in n.inputs.items()}
            if n.doc:
                d["doc"] = n.doc
            if n.when is not None:
                d["when"] = n.when
            nodes[n.id] = d
        return {"name": self.name, "description": self.description, "params": params,
                "nodes": nodes, "outputs": {k: str(v) for k, v in self.outputs.items()}}
