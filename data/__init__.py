"""stintsim: data layer."""
