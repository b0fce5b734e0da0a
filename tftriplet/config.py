"""How the losses and metrics serialize: the package they are registered under, and the
distance entries of their configs."""

from __future__ import annotations

#: The package name under which the losses and metrics are registered for serialization,
#: so that a saved `.keras` model reloads without `custom_objects`.
PACKAGE = "tftriplet"


def distance_config(distance):
    """The distance entries of a config: the name, and `squared`, its shorthand."""
    return {"distance": distance, "squared": distance == "squared_euclidean"}
