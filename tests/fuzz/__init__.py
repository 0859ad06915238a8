"""Property-based, fuzz and live attack tests (hypothesis, mutated real files, a real server).

When a test fails, hypothesis imports libcst to suggest an explicit example, and libcst
subclasses mypy_extensions.TypedDict, which warns as it is imported; the suite turns warnings
into errors, which would break pytest's report of the failure itself. Importing it here first,
with that warning silenced, leaves the report intact.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # no libcst: hypothesis does without
        pass
