"""Node classes of the sync plugin (the algorithms live in the modules one level up)."""
