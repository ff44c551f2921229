"""Funding background jobs: crypto_jobs (being written)."""
