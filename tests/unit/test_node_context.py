"""NodeContext.resource: heavy objects loaded once per worker of run_many, else per run."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from avflow.executors import ResourceCache
from avflow.node import NodeContext, Progress


def ctx(tmp_path: Path, cache: ResourceCache | None) -> NodeContext:
    return NodeContext(graph="g", node_id="n", device="cpu", output_dir=tmp_path, cache_dir=tmp_path,
                       logger=logging.getLogger("t"), progress=Progress("n"), cancel_event=threading.Event(),
                       options={} if cache is None else {"resources": cache})


def test_resource_loads_once_per_worker_and_every_time_alone(tmp_path):
    loads = []

    def load():
        loads.append(1)
        return object()

    cache = ResourceCache()
    a = ctx(tmp_path, cache).resource(("m", "w.pth"), load)
    b = ctx(tmp_path, cache).resource(("m", "w.pth"), load)   # a later input on the same worker
    c = ctx(tmp_path, cache).resource(("m", "other.pth"), load)
    assert a is b and a is not c and len(loads) == 2 and cache.hits == 1
    ctx(tmp_path, None).resource(("m", "w.pth"), load)        # a plain run: no cache
    assert len(loads) == 3


def test_syncnet_node_reuses_its_model_on_a_worker(tmp_path):
    from avflow_sync.nodes.syncnet import SyncNetScorer
    from avflow_sync.syncnet import save_random_syncnet

    weights = save_random_syncnet(tmp_path / "lipsync_expert.pth", seed=1)
    cache = ResourceCache()
    models = []
    for _ in range(2):  # two inputs handled by one worker
        node = SyncNetScorer(SyncNetScorer.Config(weights=weights))
        node.open(ctx(tmp_path, cache))
        models.append(node._model)
        node.close(ctx(tmp_path, cache))
    assert models[0] is models[1] and cache.loads == 1
