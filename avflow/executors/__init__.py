"""Running a graph over many inputs: on this machine or on a Ray cluster, resumable.

.. code-block:: python

    from avflow.executors import collect_inputs, run_many

    result = run_many("graphs/transcode.yaml", collect_inputs("videos/*.mp4"),
                      params={"width": 640}, output_root="out/", executor="local", workers=4,
                      resume=True, progress="bar")
    print(result.summary())            # counts, failures and their errors, wall time
    ok = result.all_ok                 # the CLI exits 0 if so, else 3

Each input gets its own folder ``out/<input stem>``, written in a temp folder and renamed into
place when complete; ``out/manifest.jsonl`` records each input's status, time, outputs and error.
Nodes can keep loaded models for all the inputs of a worker through the worker's
:class:`ResourceCache` (``ctx.options["resources"]``).
"""

from .inputs import MEDIA_SUFFIXES, collect_inputs
from .many import run_many
from .resources import ResourceCache
from .results import InputResult, ManyProgress, ManyResult

__all__ = ["InputResult", "MEDIA_SUFFIXES", "ManyProgress", "ManyResult", "ResourceCache", "collect_inputs",
           "run_many"]
