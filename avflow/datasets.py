"""Audio-visual training datasets (DiffPoseTalk's HDTF_TFHP LMDB layout).

A thin public re-export of the ``avflow_datasets`` built-in plugin, where the code lives:

.. code-block:: python

    from avflow.datasets import AVClipDataset

    ds = AVClipDataset("out/dataset/lmdb", "out/dataset/lmdb/train.txt",
                       coef_stats_file="out/dataset/lmdb/stats_train.npz", n_motions=100)
    audio_pair, coef_pair, (audio_mean, audio_std) = ds[0]

Build such a dataset with ``avflow run graphs/dataset.yaml --set videos=DIR`` or
:func:`build_dataset`.
"""

from avflow_datasets.build import BuildReport, build_dataset
from avflow_datasets.pickles import UnsafePickleError, safe_loads
from avflow_datasets.reader import AVClipDataset

__all__ = ["AVClipDataset", "BuildReport", "UnsafePickleError", "build_dataset", "safe_loads"]
