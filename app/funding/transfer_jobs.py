"""Funding background jobs: transfer_jobs (being written)."""
