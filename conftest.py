"""Thin: the gate's fixtures live in fixtures/, its logic in the loragate package."""

pytest_plugins = ["fixtures.models", "fixtures.adapters", "fixtures.predictions"]
