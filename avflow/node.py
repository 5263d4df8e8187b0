"""The node API: what a plugin implements.

A node is a small class whose contract is class data, readable without loading any model:

.. code-block:: python

    @dataclass(frozen=True)
    class ResizeConfig:
        width: int = param(256, "output width in pixels")

    class Resize(Node):
        '''Resize frames. Ports: frames -> frames.'''
        type = "media.resize"
        Config = ResizeConfig
        inputs = {"frames": Port(VideoFrame, "frames to resize")}
        outputs = {"frames": Port(VideoFrame, "resized frames")}

        def process(self, port, item, ctx):
            return {"frames": replace(item, image=cv2.resize(item.image, ...))}

Lifecycle: ``__init__(config)`` only stores the config; ``open(ctx)`` loads models;
``process(port, item, ctx)`` is called for every item arriving on any input port, in arrival
order; ``end(port, ctx)`` when one input port's stream ends; ``finish(ctx)`` once every input has ended (flush what is buffered); ``close(ctx)``
always, also after an error or a cancellation. Source nodes (no inputs) implement
``generate(ctx)`` instead, yielding output dicts.

Live sources (``live = True``: a network stream, a device) are started only once every node of
the graph is open, so that nothing is read while models load, and a graceful stop
(:meth:`avflow.Runner.stop`, Ctrl-C in ``avflow run``) ends their streams: the graph then drains
and finishes as at the end of an input. A live source polls ``ctx.stopping`` while it waits.

``process``, ``process_batch``, ``finish`` and ``generate`` return (or yield) ``None`` or a
dict mapping output port names to one payload or a list of payloads. ``finish`` may also be a
generator, so that a node which can only produce its output at the end (after a decision that
needs the whole input) still streams it.

Batching: a node that sets ``batch = BatchSpec(port=...)`` and has a ``batch_size`` config field
gets ``process_batch(batch, ctx)`` for that port: the runtime collects up to ``batch_size``
items, stacks their ``tensor_fields`` into tensors on ``ctx.device`` once, and flushes the last,
partial batch when the port ends. On CPU, batched nodes of a run take turns in
``process_batch`` (each one's torch ops already use every core).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from .params import describe_config
from .payloads import Payload

Outputs = Mapping[str, "Payload | Sequence[Payload]"] | None


@dataclass(frozen=True)
class Port:
    """A typed input or output of a node.

    :param kind: payload class carried by the port.
    :param doc: one line for ``avflow nodes``.
    :param optional: an input that may stay unconnected.
    :param many: an input that may be fed by several outputs (fan-in); their items interleave.
    """

    kind: type[Payload]
    doc: str = ""
    optional: bool = False
    many: bool = False


def param(default: Any = dataclasses.MISSING, doc: str = "", *, choices: Sequence[Any] | None = None,
          min: float | None = None, max: float | None = None, exists: bool = False) -> Any:
    """Declare a config field with its documentation (and optional choices or bounds).

    Use as the default of a field in a node's frozen ``Config`` dataclass. Leave ``default``
    out for a required parameter. Mutable defaults (lists, dicts) are copied per instance.

    :param exists: a path that must exist when the graph runs (an input file or folder);
        validation checks it before anything is opened (None is not checked).
    """
    meta = {"doc": doc, "choices": tuple(choices) if choices is not None else None,
            "min": min, "max": max, "exists": exists}
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoConfig:
    """A node without parameters."""


@dataclass(frozen=True)
class BatchSpec:
    """Batching contract of a node.

    :param port: the input port whose items are batched.
    :param size_param: the config field holding the batch size.
    """

    port: str
    size_param: str = "batch_size"


@dataclass(frozen=True)
class ModelFile:
    """A model file a node can load, for ``avflow models``.

    :param name: what it is ("Wav2Lip lip-sync expert").
    :param param: the config field that points at it (a file or folder path).
    :param files: relative paths expected inside that folder (empty: the path is the file).
    :param required: whether the node can run without it.
    :param doc: where it comes from, what format.
    :param unless: a bool config field that, when true, makes the file unnecessary
        (``random_init``).
    :param when: config values under which the node uses the file (``{"version": "v15"}``);
        empty: always.

    Validation checks the required files of every enabled node (see :meth:`Node.preflight`)
    before anything is opened, as ``avflow models --check`` does for a folder.
    """

    name: str
    param: str
    files: tuple[str, ...] = ()
    required: bool = True
    doc: str = ""
    unless: str = ""
    when: Mapping[str, Any] = field(default_factory=dict)

    def needed(self, config: Any) -> bool:
        """Whether a node with ``config`` needs this file to run."""
        if not self.required or (self.unless and getattr(config, self.unless, False)):
            return False
        return all(getattr(config, k, None) == v for k, v in self.when.items())

    def missing(self, config: Any) -> list[str]:
        """The files of this model that ``config`` points at and that are not there."""
        value = getattr(config, self.param, None)
        if value is None:
            return [f"(no {self.param} given)"]
        root = Path(value)
        if not self.files:
            return [] if root.is_file() else [str(root)]
        return [str(root / f) for f in self.files if not (root / f).is_file()]


@dataclass(frozen=True)
class ModelScaffold:
    """Writes a model folder with random weights, for ``avflow models scaffold DIR --random``.

    :param name: what it scaffolds ("musetalk").
    :param doc: one line for ``avflow models``.
    :param write: ``write(directory, tiny, seed) -> list[Path]`` of files written; ``tiny`` makes
        the smallest architecture that still loads through the same code.
    :param default: written by ``avflow models scaffold DIR`` when no ``--name`` is given.
    """

    name: str
    doc: str
    write: Callable[[Path, bool, int], list[Path]]
    default: bool = True


@dataclass(frozen=True)
class PreflightContext:
    """What :meth:`Node.preflight` may know about the node's place in the graph."""

    node_id: str
    connected_inputs: frozenset[str] = frozenset()
    connected_outputs: frozenset[str] = frozenset()


@dataclass
class Batch:
    """Items collected for one ``process_batch`` call.

    ``items`` are the payloads in arrival order; ``tensors`` holds each of the payload class's
    ``tensor_fields`` stacked along a new first axis, already on the node's device.
    """

    port: str
    items: list[Payload]
    tensors: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


class Progress:
    """Progress reporting handle given to a node through its context."""

    def __init__(self, node: str, sink: Callable[[str, int, int | None, str], None] | None = None):
        self._node = node
        self._sink = sink
        self.done = 0
        self.total: int | None = None
        self.unit = "items"

    def set_total(self, total: int | None, unit: str = "frames") -> None:
        self.total, self.unit = total, unit
        self._emit()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._emit()

    def _emit(self) -> None:
        if self._sink is not None:
            self._sink(self._node, self.done, self.total, self.unit)


@dataclass
class NodeContext:
    """What the runtime tells a node: where to write, which device, how to log and report.

    New runtime information is added here, never to the node method signatures.
    """

    graph: str
    node_id: str
    device: str
    output_dir: Path
    cache_dir: Path
    logger: logging.Logger
    progress: Progress
    connected_outputs: frozenset[str] = frozenset()
    connected_inputs: frozenset[str] = frozenset()
    cancel_event: threading.Event = field(default_factory=threading.Event)
    options: dict[str, Any] = field(default_factory=dict)  # free-form runtime options
    stop_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def stopping(self) -> bool:
        """A graceful stop was asked for: a live source ends its stream (see :attr:`Node.live`)."""
        return self.stop_event.is_set()

    def resource(self, key: Any, load: Callable[[], Any]) -> Any:
        """A heavy object (a loaded model) shared by the runs of one worker.

        When a graph runs over many inputs (:func:`avflow.executors.run_many`), each worker
        keeps what ``load()`` returned under ``key`` for all its inputs, so models load once
        per worker, not once per input. ``key`` must name everything the object depends on
        (node type, weights path, device, dtype). Alone, a run just calls ``load()``. The
        object must hold no per-input state.
        """
        cache = self.options.get("resources")
        return cache.get(key, load) if cache is not None else load()

    def output_path(self, name: str | Path) -> Path:
        """Resolve ``name`` against the output directory (absolute paths are kept)."""
        p = Path(name)
        return p if p.is_absolute() else self.output_dir / p


class Node:
    """Base class of every node. Subclasses set the class attributes below."""

    #: Unique registered type name, "<plugin>.<name>" by convention.
    type: ClassVar[str] = ""
    #: Frozen dataclass of parameters (fields made with :func:`param`).
    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[Mapping[str, Port]] = {}
    outputs: ClassVar[Mapping[str, Port]] = {}
    #: Set to batch one input port (see :class:`BatchSpec`).
    batch: ClassVar[BatchSpec | None] = None
    #: Model files this node can load, for ``avflow models``.
    models: ClassVar[Sequence[ModelFile]] = ()
    #: Bounded inbox size; raise it for nodes that must look ahead (windows, batches).
    queue_size: ClassVar[int] = 16
    #: ``open()`` runs while no other node of the run opens. Nodes open side by side otherwise,
    #: so that a short input does not wait for every model in turn; set it for libraries whose
    #: lazy imports are not thread-safe (transformers, diffusers).
    open_alone: ClassVar[bool] = False
    #: A source reading input as it happens (a stream, a device): started once every node is
    #: open, and ended (not cancelled) by a graceful stop; see the module docstring.
    live: ClassVar[bool] = False

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def preflight(cls, config: Any, check: "PreflightContext") -> list[tuple[str, str]]:
        """Cheap checks of the file system that validation runs before anything is opened.

        Called with the node's built config; returns ``(param name, problem)`` pairs (``@SET`` in a
        problem becomes the ``--set`` that fixes it: ``--set syncnet_weights=PATH``). The
        default checks the params declared with ``param(..., exists=True)`` and the required
        :class:`ModelFile` s of :attr:`models`. Override to add checks (call ``super()``);
        import nothing heavy here.
        """
        from .params import config_fields

        problems: list[tuple[str, str]] = []
        for name, (f, _tp) in config_fields(type(config)).items():
            value = getattr(config, name, None)
            if (f.metadata or {}).get("exists") and value is not None and not Path(value).exists():
                problems.append((name, f"not found: {value}"))
        for m in cls.models:
            if not m.needed(config):
                continue
            missing = m.missing(config)
            if missing:
                what = m.name  # its doc is in `avflow models`
                if getattr(config, m.param, None) is None:
                    problems.append((m.param, f"needs the {what}: give it with @SET (see `avflow models`)"))
                else:
                    problems.append((m.param, f"{len(missing)} file(s) of {what} missing: {', '.join(missing)}; "
                                              "fix the path given with @SET (see `avflow models`)"))
        return problems

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, ctx: NodeContext) -> None:
        """Load models, open files. Called once before any item."""

    def generate(self, ctx: NodeContext) -> Iterator[Outputs]:
        """Source nodes: yield output dicts until the input is exhausted."""
        raise NotImplementedError(f"{self.type} has no inputs and must implement generate()")

    def process(self, port: str, item: Payload, ctx: NodeContext) -> Outputs:
        """Handle one item that arrived on ``port``."""
        raise NotImplementedError(f"{self.type} must implement process()")

    def process_batch(self, batch: Batch, ctx: NodeContext) -> Outputs:
        """Handle a batch of items from the batched port (see :class:`BatchSpec`)."""
        raise NotImplementedError(f"{self.type} declares batching and must implement process_batch()")

    def end(self, port: str, ctx: NodeContext) -> Outputs:
        """Input ``port`` has ended (all its sources finished); other ports may still deliver."""
        return None

    def finish(self, ctx: NodeContext) -> Outputs:
        """Every input has ended: emit what is still buffered."""
        return None

    def close(self, ctx: NodeContext) -> None:
        """Release resources. Always called, after errors and cancellation too."""

    # -- introspection ---------------------------------------------------------------------
    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The node's contract as plain data (for ``avflow nodes --json``)."""
        return {
            "type": cls.type,
            "doc": (cls.__doc__ or "").strip(),
            "inputs": {n: {"kind": p.kind.__name__, "doc": p.doc, "optional": p.optional}
                       for n, p in cls.inputs.items()},
            "outputs": {n: {"kind": p.kind.__name__, "doc": p.doc} for n, p in cls.outputs.items()},
            "params": describe_config(cls.Config),
            "batch": dataclasses.asdict(cls.batch) if cls.batch else None,
            "live": cls.live,
            "models": [dataclasses.asdict(m) for m in cls.models],
        }
