"""Leads: capture from websites and landing pages, with their marketing source."""
