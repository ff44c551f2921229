"""Integrations: API keys that let the broker's websites and tools call the public API."""
