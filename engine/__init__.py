"""stintsim: engine layer."""
