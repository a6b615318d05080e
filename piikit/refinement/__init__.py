"""Refinement: refine(), DeepInversion run on its own from a result, images or noise (its phases are the engine's)."""
