"""Compliance review cases: opened with a transfer held in review, decided by a person."""
