"""Node classes of the faces plugin, one module per node (shared code one level up)."""
