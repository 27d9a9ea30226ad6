"""lemagen's version, in a module of its own: anything in the package can import it without
importing the package's `__init__` (and the public API it exposes)."""

__version__ = "0.1.0"
