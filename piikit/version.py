"""The package version (one place, read by ``piikit.__version__`` and result provenance)."""

__version__ = "0.1.0"
