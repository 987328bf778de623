"""``ngis model``: the decision models (hydrology, flood, landslide, crash hot spots).

Each model's command lives in its own module and is loaded only when called, so ``ngis --help``
stays fast and a model's heavy imports (numba kernels, scikit-learn) cost nothing elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

MODELS = {
    "hydro": "gis.cli.model_hydro",
    "flood": "gis.cli.model_flood",
    "landslide": "gis.cli.model_landslide",
    "hotspots": "gis.cli.model_hotspots",
}


class ModelGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, module in MODELS.items()
                      if importlib.util.find_spec(module) is not None)

    def get_command(self, ctx, name):
        module = MODELS.get(name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=ModelGroup)
def command():
    """Run a decision model: hydro, flood, landslide, hotspots."""
