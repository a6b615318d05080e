"""The engine: configs and presets, the run's phases (PII stages, DeepInversion), stage schedule,
image parameterizations, augmentations, objectives and priors, the step loop and its result."""
