"""Node classes of the media plugin, one module per node (shared code one level up)."""
