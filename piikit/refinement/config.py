"""Deprecated module path: DeepInversion's settings now live in :mod:`piikit.engine.deepinversion`
(the engine runs DeepInversion as a phase, ``refine_steps``); use ``piikit.DeepInversionConfig``.
This path goes in the next release."""

import warnings

from piikit.engine.deepinversion import DEEPINVERSION_PRESETS as DEEPINVERSION_PRESETS
from piikit.engine.deepinversion import DeepInversionConfig as DeepInversionConfig

__all__ = ["DeepInversionConfig", "DEEPINVERSION_PRESETS"]

warnings.warn("piikit.refinement.config is now piikit.engine.deepinversion (or use piikit.DeepInversionConfig); "
              "the old path goes in the next release", DeprecationWarning, stacklevel=2)
