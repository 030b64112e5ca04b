"""stintsim: policies layer."""
