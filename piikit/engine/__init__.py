"""The engine: config and presets, stage schedule, image parameterizations, augmentations,
objectives, the step loop and its result."""
