"""Sanctions screening: official lists, fuzzy explainable matching, cases and blocks."""
