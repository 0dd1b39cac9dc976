"""clipscope_utils: the logic behind the clipscope book.

Notebooks only set parameters and call this package; everything that computes lives here and is
unit-tested in ``tests/``.
"""

__version__ = "0.1.0"
