"""topo: one container with N worker processes, or N containers and a queue?

This package is also copied into the worker image, so importing it must stay free of any
dependency beyond the standard library.
"""

__version__ = "0.1.0"
