"""`kovra dev`: everything in one process on embedded defaults."""
