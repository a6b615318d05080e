"""Models: the :class:`Classifier` wrapper, :func:`load_model` (names, checkpoints, modules),
checkpoint reading, and the small offline digits models of notebook 07.

``piikit.models.load_model`` etc. are re-exported here; the digits zoo stays in
:mod:`piikit.models.digits` (it needs scikit-learn).
"""

from piikit.models.classifier import Classifier as Classifier
from piikit.models.classifier import frozen as frozen
from piikit.models.loading import OFFLINE_MODELS as OFFLINE_MODELS
from piikit.models.loading import available_models as available_models
from piikit.models.loading import load_model as load_model

__all__ = ["Classifier", "OFFLINE_MODELS", "available_models", "frozen", "load_model"]
