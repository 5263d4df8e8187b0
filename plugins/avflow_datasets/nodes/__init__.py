"""Node classes of the datasets plugin, one module per node (shared code one level up)."""

from .build import BuildDataset
from .face_coefs import FaceCoefs
from .npz_coefs import NpzCoefs
from .shard_writer import ShardWriter

NODES = [FaceCoefs, NpzCoefs, ShardWriter, BuildDataset]

__all__ = ["BuildDataset", "FaceCoefs", "NODES", "NpzCoefs", "ShardWriter"]
