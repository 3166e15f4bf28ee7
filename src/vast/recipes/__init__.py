"""Recipes shipped with the package: ``vast train demo`` or ``vast train k400_vast_tiny``."""
