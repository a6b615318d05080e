"""Interfaces: side-by-side comparisons, notebook widgets and the explorer, the command line and the sweep runner."""
