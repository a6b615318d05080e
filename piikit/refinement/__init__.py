"""Refinement: image priors (TV, L2, BatchNorm statistics) and DeepInversion's refine()."""
