"""The smallest case a Hypothesis strategy draws on which something goes wrong, the same
wherever and whenever it is asked: the map search and the platform search both use it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, find, settings
from hypothesis.errors import NoSuchExample


class OutOfTime(BaseException):
    """A search's time bound has passed. A BaseException, so that Hypothesis stops at once
    instead of shrinking it as a failing case."""


@contextmanager
def _project_literals_hidden():
    """Hypothesis now and then draws a literal found in the project's loaded modules. Which
    modules are loaded depends on how the checker was started (verify, pytest, a benchmark)
    and on what ran before in the process, so the cases drawn would depend on that too. With
    the literals hidden, a search draws the same cases wherever it runs. Hypothesis versions
    without the feature have nothing to hide."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
        collect = providers._get_local_constants
    except (ImportError, AttributeError):
        yield
        return
    providers._get_local_constants = Constants
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = collect
        providers.CONSTANTS_CACHE.cache.clear()


def find_smallest(strategy, goes_wrong: Callable[[Any], bool], examples: int,
                  shrink: bool = True):
    """The smallest value of `strategy` for which `goes_wrong` holds, among `examples`
    generated values and their shrinks (without `shrink`: the first one generated), or None.
    The same answer wherever and whenever it is asked."""
    fixed = settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                     phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
                     verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                     print_blob=False)
    try:
        with _project_literals_hidden():
            return find(strategy, goes_wrong, settings=fixed)
    except NoSuchExample:
        return None
