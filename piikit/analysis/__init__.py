"""Analysis of inversions: summaries and tables of scores, Captum attributions, attribution agreement, spectra, the ablation benchmark's results and the paper's claims checked against them."""
