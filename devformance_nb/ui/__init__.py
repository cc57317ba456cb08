"""Notebook surfaces: the live ipywidgets view, its panes and text, the magic."""
