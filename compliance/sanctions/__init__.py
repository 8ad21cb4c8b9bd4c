"""Sanctions screening: load published lists, normalise names, match a payee against them.

`lists` turns OFAC's SDN CSV files and a simple CSV format into `SanctionedParty` records,
`normalise` reduces a name to comparable tokens (any script, any order, without titles or
company suffixes) and `screening` indexes every name and alias so a payee's name is scored
against a small candidate set in well under a millisecond on a typical list.
"""

__all__ = ["lists", "normalise", "screening"]
