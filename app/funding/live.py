"""Live renderers for funding (being written)."""
