"""ranx's numba kernels, without numba's noise.

ranx compiles its metric, fusion and test kernels with numba on first use (cached on disk
afterwards), and numba then warns ``NumbaTypeSafetyWarning: unsafe cast from uint64 to int64``
about ranx's own code: nothing a user of this harness can act on. Calls into ranx run inside
:func:`quiet_jit`, which ignores that one warning category for their duration only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_jit() -> Iterator[None]:
    with warnings.catch_warnings():
        try:
            from numba.core.errors import NumbaTypeSafetyWarning
        except ImportError:  # pragma: no cover - ranx depends on numba
            pass
        else:
            warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        yield
