"""Node classes of the musetalk plugin, one module per node or pair of nodes (shared code one level up)."""
