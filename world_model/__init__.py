"""stintsim: world_model layer."""
