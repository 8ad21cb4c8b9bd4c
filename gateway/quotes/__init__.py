"""FX quotes over HTTP: priced and locked by `fx`, served here."""
