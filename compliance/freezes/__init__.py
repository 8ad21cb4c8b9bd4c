"""Freezing a tenant or a recipient: every transfer of a frozen party stops."""
