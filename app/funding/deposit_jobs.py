"""Funding background jobs: deposit_jobs (being written)."""
