"""Funding background jobs: withdrawal_jobs (being written)."""
