"""Batch payouts (SPEC §5): thousands of payouts in one request, FX netted per currency pair,
each item a transfer whose lifecycle the transfer worker runs."""
