"""Cross-border transfers: recipients, the lifecycle of SPEC §6 and the worker driving it."""
