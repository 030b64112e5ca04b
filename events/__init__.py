"""stintsim: events layer."""
