"""Node classes of the voice plugin, one module per node."""
