"""Pure logic (stdlib and sqlparse): fingerprints, detection, discovery, scheduling.

No processes of its own beyond discovery's collection child, no store, no widgets.
"""
