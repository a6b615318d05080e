"""piikit: class inversion of image classifiers by Plug-In Inversion, in notebooks.

>>> import piikit
>>> model = piikit.load_model("efficientnet_lite0")          # doctest: +SKIP
>>> result = piikit.invert(model, ["volcano", 1], preset="fast")  # doctest: +SKIP
>>> result.save("out/")                                      # doctest: +SKIP

The names below are the public surface: verbs, configs, results, objectives and what the
notebooks need. Everything else (augmentations, parameterizations, the stage schedule, the
error classes, ...) is reachable from its submodule (``piikit.engine.augment``,
``piikit.errors``, ...); see the package map, ``docs/guide/package.md``.

Importing piikit has no side effects and loads nothing heavy: each name is imported on
first use. Process-wide settings (OpenMP's wait policy, thread counts, signal handlers) are
the ``piikit`` command's business, not the library's; for notebooks see ``docs/guide/performance.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from piikit.version import __version__ as __version__

# name -> the module that owns it. Loaded on first access (PEP 562), so `import piikit`
# imports neither torch nor timm, and the command can set OMP_WAIT_POLICY before they load.
_EXPORTS: dict[str, str] = {
    # verbs
    "invert": "piikit.engine.inversion",
    "make_config": "piikit.engine.config",
    "refine": "piikit.refinement.deepinversion",
    "load_model": "piikit.models.loading",
    "available_models": "piikit.models.loading",
    "resolve_class": "piikit.labels",
    "search_classes": "piikit.labels",
    "resolve_device": "piikit.device",
    "available_devices": "piikit.device",
    "score": "piikit.models.scoring",
    "predict": "piikit.models.scoring",
    "summarize": "piikit.analysis.evaluate",
    "compare_settings": "piikit.interfaces.comparison",
    "attribute": "piikit.analysis.attribution",
    "attribute_models": "piikit.analysis.attribution",
    "map_agreement": "piikit.analysis.agreement",
    "agreement_rows": "piikit.analysis.agreement",
    "list_layers": "piikit.models.layers",
    "plot_attributions": "piikit.interfaces.attribution_plots",
    "plot_model_attributions": "piikit.interfaces.attribution_plots",
    "capture_activation": "piikit.engine.features",
    "sweep": "piikit.interfaces.runner",
    "explore": "piikit.interfaces.explorer",
    "sanity": "piikit.analysis.sanity",
    "atlas": "piikit.interfaces.atlas",
    "SanityReport": "piikit.analysis.sanity",
    "SanityThresholds": "piikit.analysis.sanity",
    # the ablation benchmark's results (shipped in piikit/data/ablations) and their figures
    "ablation_results": "piikit.analysis.ablations",
    "ablation_thumbnails": "piikit.analysis.ablations",
    "ablation_images": "piikit.analysis.ablations",
    "summarize_ablations": "piikit.analysis.ablations",
    "ablation_table": "piikit.analysis.ablations",
    "ablation_takeaways": "piikit.analysis.ablations",
    "paper_claim_takeaways": "piikit.analysis.claims",
    "check_claim": "piikit.analysis.claims",
    "plot_ablations": "piikit.figures",
    "plot_ablation_grid": "piikit.figures",
    # what the notebooks show: tables, figures, photos, measures of an image, architecture matrices
    "format_table": "piikit.tables",
    "format_spread": "piikit.tables",
    "image_grid": "piikit.figures",
    "plot_spectra": "piikit.figures",
    "load_photo": "piikit.images",
    "format_scores": "piikit.analysis.evaluate",
    "tv_per_pixel": "piikit.analysis.evaluate",
    "region_contrast": "piikit.analysis.evaluate",
    "cross_matrix": "piikit.analysis.evaluate",
    "region_share": "piikit.analysis.agreement",
    "radial_spectrum": "piikit.analysis.spectrum",
    "pairwise_distance": "piikit.analysis.spectrum",
    "compare_architectures": "piikit.interfaces.architectures",
    "load_models": "piikit.interfaces.architectures",
    "plot_matrices": "piikit.interfaces.matrix_plot",
    "recorded_matrices": "piikit.interfaces.matrix_plot",
    "off_diagonal_mean": "piikit.interfaces.matrix_plot",
    "architecture_results": "piikit.interfaces.matrix_plot",
    "result_slider": "piikit.interfaces.widgets",
    # configs
    "InversionConfig": "piikit.engine.config",
    "PRESETS": "piikit.engine.config",
    "DeepInversionConfig": "piikit.engine.deepinversion",
    "DEEPINVERSION_PRESETS": "piikit.engine.deepinversion",
    # the loop, results and models
    "Inversion": "piikit.engine.inversion",
    "StepState": "piikit.engine.callbacks",
    "Callback": "piikit.engine.callbacks",
    "InversionResult": "piikit.engine.result",
    "SettingsComparison": "piikit.interfaces.comparison",
    "SweepSummary": "piikit.interfaces.runner",
    "Classifier": "piikit.models.classifier",
    "randomized_copy": "piikit.analysis.sanity",  # a model that learned nothing: the baseline sanity() compares to
    # objectives and loss terms (``invert(objective=..., terms=...)``)
    "Objective": "piikit.engine.objectives",
    "ClassObjective": "piikit.engine.objectives",
    "ChannelObjective": "piikit.engine.features",
    "NeuronObjective": "piikit.engine.features",
    "DirectionObjective": "piikit.engine.features",
    "LossTerm": "piikit.engine.objectives",
    "TotalVariation": "piikit.engine.priors",
    "L2Prior": "piikit.engine.priors",
    "BatchNormPrior": "piikit.engine.priors",
    "ProxyBatchNormPrior": "piikit.engine.proxy_prior",
    # errors: the base class (every other one is in piikit.errors) and the one that carries a result
    "PiikitError": "piikit.errors",
    "InversionFailed": "piikit.errors",
}

# Old public names -> new ones, kept for one release (a DeprecationWarning on each use).
_RENAMED: dict[str, str] = {
    "compare": "compare_settings",
    "Comparison": "SettingsComparison",
    "attribute_compare": "attribute_models",
    "plot_comparison": "plot_model_attributions",
}

# Submodules reachable as attributes without importing them first (notebooks' old spelling).
_MODULES: dict[str, str] = {
    "widgets": "piikit.interfaces.widgets",
    "digits": "piikit.models.digits",
    **{name: f"piikit.{name}" for name in (
        "errors", "labels", "device", "engine", "models", "refinement", "analysis", "interfaces")},
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _RENAMED:
        from piikit.errors import warn_renamed

        warn_renamed(name, _RENAMED[name])
        return __getattr__(_RENAMED[name])  # not cached: every use of the old name warns
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_MODULES})


if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from piikit.analysis.attribution import attribute as attribute
    from piikit.analysis.attribution import attribute_models as attribute_models
    from piikit.analysis.agreement import agreement_rows as agreement_rows
    from piikit.analysis.agreement import map_agreement as map_agreement
    from piikit.models.layers import list_layers as list_layers
    from piikit.interfaces.attribution_plots import plot_attributions as plot_attributions
    from piikit.interfaces.attribution_plots import plot_model_attributions as plot_model_attributions
    from piikit.interfaces.comparison import SettingsComparison as SettingsComparison
    from piikit.interfaces.comparison import compare_settings as compare_settings
    from piikit.models.scoring import score as score
    from piikit.models.scoring import predict as predict
    from piikit.analysis.sanity import SanityReport as SanityReport
    from piikit.analysis.sanity import SanityThresholds as SanityThresholds
    from piikit.analysis.sanity import sanity as sanity
    from piikit.analysis.ablations import ablation_images as ablation_images
    from piikit.analysis.ablations import ablation_results as ablation_results
    from piikit.analysis.ablations import ablation_table as ablation_table
    from piikit.analysis.ablations import ablation_takeaways as ablation_takeaways
    from piikit.analysis.ablations import ablation_thumbnails as ablation_thumbnails
    from piikit.analysis.ablations import summarize_ablations as summarize_ablations
    from piikit.analysis.claims import check_claim as check_claim
    from piikit.analysis.claims import paper_claim_takeaways as paper_claim_takeaways
    from piikit.figures import plot_ablation_grid as plot_ablation_grid
    from piikit.figures import plot_ablations as plot_ablations
    from piikit.interfaces.atlas import atlas as atlas
    from piikit.analysis.evaluate import summarize as summarize
    from piikit.device import available_devices as available_devices
    from piikit.device import resolve_device as resolve_device
    from piikit.engine.config import PRESETS as PRESETS
    from piikit.engine.config import InversionConfig as InversionConfig
    from piikit.engine.config import make_config as make_config
    from piikit.engine.callbacks import Callback as Callback
    from piikit.engine.inversion import Inversion as Inversion
    from piikit.engine.callbacks import StepState as StepState
    from piikit.engine.inversion import invert as invert
    from piikit.engine.features import ChannelObjective as ChannelObjective
    from piikit.engine.objectives import ClassObjective as ClassObjective
    from piikit.engine.features import DirectionObjective as DirectionObjective
    from piikit.engine.objectives import LossTerm as LossTerm
    from piikit.engine.features import NeuronObjective as NeuronObjective
    from piikit.engine.objectives import Objective as Objective
    from piikit.engine.features import capture_activation as capture_activation
    from piikit.engine.result import InversionResult as InversionResult
    from piikit.errors import InversionFailed as InversionFailed
    from piikit.errors import PiikitError as PiikitError
    from piikit.interfaces.runner import SweepSummary as SweepSummary
    from piikit.interfaces.runner import sweep as sweep
    from piikit.interfaces.explorer import explore as explore
    from piikit.labels import resolve_class as resolve_class
    from piikit.labels import search_classes as search_classes
    from piikit.models.classifier import Classifier as Classifier
    from piikit.analysis.sanity import randomized_copy as randomized_copy
    from piikit.models.loading import available_models as available_models
    from piikit.models.loading import load_model as load_model
    from piikit.engine.deepinversion import DEEPINVERSION_PRESETS as DEEPINVERSION_PRESETS
    from piikit.engine.deepinversion import DeepInversionConfig as DeepInversionConfig
    from piikit.refinement.deepinversion import refine as refine
    from piikit.engine.priors import BatchNormPrior as BatchNormPrior
    from piikit.engine.priors import L2Prior as L2Prior
    from piikit.engine.priors import TotalVariation as TotalVariation
    from piikit.engine.proxy_prior import ProxyBatchNormPrior as ProxyBatchNormPrior
    from piikit.tables import format_table as format_table
    from piikit.tables import format_spread as format_spread
    from piikit.figures import image_grid as image_grid
    from piikit.figures import plot_spectra as plot_spectra
    from piikit.images import load_photo as load_photo
    from piikit.analysis.evaluate import format_scores as format_scores
    from piikit.analysis.evaluate import tv_per_pixel as tv_per_pixel
    from piikit.analysis.evaluate import region_contrast as region_contrast
    from piikit.analysis.evaluate import cross_matrix as cross_matrix
    from piikit.analysis.agreement import region_share as region_share
    from piikit.analysis.spectrum import radial_spectrum as radial_spectrum
    from piikit.analysis.spectrum import pairwise_distance as pairwise_distance
    from piikit.interfaces.architectures import compare_architectures as compare_architectures
    from piikit.interfaces.architectures import load_models as load_models
    from piikit.interfaces.matrix_plot import plot_matrices as plot_matrices
    from piikit.interfaces.matrix_plot import recorded_matrices as recorded_matrices
    from piikit.interfaces.matrix_plot import off_diagonal_mean as off_diagonal_mean
    from piikit.interfaces.matrix_plot import architecture_results as architecture_results
    from piikit.interfaces.widgets import result_slider as result_slider

__all__ = ["__version__", *sorted(_EXPORTS)]
