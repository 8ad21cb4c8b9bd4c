"""Foreign exchange: rate sources, margins and locked quotes (built with the transfers issue)."""
