"""piikit: class inversion of image classifiers by Plug-In Inversion, in notebooks.

>>> import piikit
>>> model = piikit.load_model("efficientnet_lite0")          # doctest: +SKIP
>>> result = piikit.invert(model, ["volcano", 1], preset="fast")  # doctest: +SKIP
>>> result.save("out/")                                      # doctest: +SKIP
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# Idle OpenMP threads that spin make two torch processes on the same cores (a notebook next
# to a `piikit` run) several times slower than sharing fairly; sleeping threads do not
# (benchmarks/shared_cpu.py). OpenMP reads this once, when torch loads, so it only takes
# effect when piikit is imported first (always so for the `piikit` command); a value you set
# yourself wins.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .attribution import UnknownLayerError as UnknownLayerError
from .attribution import attribute as attribute
from .attribution import attribute_compare as attribute_compare
from .attribution import plot_attributions as plot_attributions
from .attribution import plot_comparison as plot_comparison
from .augment import ColorShift as ColorShift
from .augment import Flip as Flip
from .augment import Jitter as Jitter
from .augment import RandomAffine as RandomAffine
from .augment import Repeat as Repeat
from .comparison import Comparison as Comparison
from .comparison import compare as compare
from .config import PRESETS as PRESETS
from .config import InversionConfig as InversionConfig
from .config import make_config as make_config
from .deepinversion import DeepInversionConfig as DeepInversionConfig
from .deepinversion import refine as refine
from . import digits as digits
from .device import available_devices as available_devices
from .device import resolve_device as resolve_device
from .errors import DeviceUnavailableError as DeviceUnavailableError
from .errors import HubUnavailableError as HubUnavailableError
from .errors import InversionFailed as InversionFailed
from .errors import ModelLoadError as ModelLoadError
from .errors import PiikitError as PiikitError
from .errors import UnknownClassError as UnknownClassError
from .errors import UnknownModelError as UnknownModelError
from .errors import UnsupportedModelError as UnsupportedModelError
from .evaluate import score as score
from .evaluate import summarize as summarize
from .inversion import Callback as Callback
from .inversion import Inversion as Inversion
from .inversion import StepState as StepState
from .inversion import invert as invert
from . import labels as labels
from .labels import resolve_class as resolve_class
from .labels import search_classes as search_classes
from .models import Classifier as Classifier
from .models import available_models as available_models
from .models import load_model as load_model
from .objectives import Batch as Batch
from .objectives import ChannelObjective as ChannelObjective
from .objectives import ClassObjective as ClassObjective
from .objectives import DirectionObjective as DirectionObjective
from .objectives import LossTerm as LossTerm
from .objectives import NeuronObjective as NeuronObjective
from .objectives import Objective as Objective
from .objectives import capture_activation as capture_activation
from .param import FourierParam as FourierParam
from .param import PixelParam as PixelParam
from .priors import BatchNormPrior as BatchNormPrior
from .priors import L2Prior as L2Prior
from .priors import TotalVariation as TotalVariation
from .result import InversionResult as InversionResult
from .schedule import StageSchedule as StageSchedule
from .sweep import SweepSummary as SweepSummary
from .sweep import sweep as sweep  # the function; "from piikit.sweep import ..." still reaches the module


def __getattr__(name: str) -> object:
    # piikit.widgets needs ipywidgets; import it only when a notebook asks for it.
    if name == "widgets":
        import importlib

        return importlib.import_module(".widgets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "Batch",
    "BatchNormPrior",
    "Callback",
    "ChannelObjective",
    "ClassObjective",
    "Classifier",
    "ColorShift",
    "Comparison",
    "DeepInversionConfig",
    "DeviceUnavailableError",
    "DirectionObjective",
    "Flip",
    "FourierParam",
    "HubUnavailableError",
    "Inversion",
    "InversionConfig",
    "InversionFailed",
    "InversionResult",
    "Jitter",
    "L2Prior",
    "LossTerm",
    "ModelLoadError",
    "NeuronObjective",
    "Objective",
    "PRESETS",
    "PiikitError",
    "PixelParam",
    "RandomAffine",
    "Repeat",
    "StageSchedule",
    "StepState",
    "SweepSummary",
    "TotalVariation",
    "UnknownClassError",
    "UnknownLayerError",
    "UnknownModelError",
    "UnsupportedModelError",
    "attribute",
    "attribute_compare",
    "available_devices",
    "available_models",
    "capture_activation",
    "compare",
    "invert",
    "load_model",
    "make_config",
    "plot_attributions",
    "plot_comparison",
    "refine",
    "resolve_class",
    "resolve_device",
    "score",
    "search_classes",
    "summarize",
    "sweep",
    "widgets",
]
