"""Where the built-in model lives: a 2-member BEBERT 1-1-4 for SST-2, shipped inside the package.

Trained by scripts/train_builtin.py from the recipe bebert/recipes/builtin.yaml; its manifest holds
the dev accuracy measured when it was trained. Every command that takes an artifact defaults to it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_DIR = Path(str(resources.files("bebert"))) / "builtin_model"
BUILTIN_RECIPE = Path(str(resources.files("bebert.recipes").joinpath("builtin.yaml")))
