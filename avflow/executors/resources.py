"""A per-worker cache of heavy objects (loaded models) that outlive one run of a graph.

Each worker process of :func:`avflow.executors.run_many` owns one :class:`ResourceCache` and
hands it to every run it makes, under ``ctx.options["resources"]``. A node opts in from
``open``, keying the object by everything that makes it different::

    def open(self, ctx):
        cache = ctx.options.get("resources")
        key = (self.type, str(self.config.weights), ctx.device)
        load = lambda: load_model(self.config.weights, ctx.device)
        self._model = cache.get(key, load) if cache is not None else load()

A worker runs one input at a time, so a cached object is used by one run at a time; a node
must not keep per-input state in it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")

_log = logging.getLogger("avflow.executors")


class ResourceCache:
    """Thread-safe ``key -> object`` store; each key's factory runs once.

    :attr loads: how many times a factory ran (one per distinct key).
    :attr hits: how many :meth:`get` calls found the object already loaded.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.hits = 0

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The object stored under ``key``, made by ``factory()`` the first time.

        Two nodes asking for different keys load in parallel; the same key loads once. A
        factory that raises stores nothing (the next call tries again).
        """
        with self._lock:
            if key in self._items:
                self.hits += 1
                return self._items[key]
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    self.hits += 1
                    return self._items[key]
            value = factory()
            with self._lock:
                self._items[key] = value
                self.loads += 1
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Drop every object, calling ``close()`` on those that have one."""
        with self._lock:
            items = list(self._items.items())
            self._items.clear()
            self._locks.clear()
        for key, value in items:
            close = getattr(value, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - one bad close must not keep the others open
                    _log.warning("closing cached resource %r failed: %s", key, exc)
