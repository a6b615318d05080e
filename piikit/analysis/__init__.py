"""Analysis of inversions: scoring with other models, Captum attributions, model comparison."""
