"""Interfaces: figures, notebook widgets, the command line and the sweep runner."""
