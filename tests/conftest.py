"""Test configuration: every test runs in float64, and JAX's compiled programs are
dropped before the process runs out of memory mappings.

Why: XLA:CPU (jax 0.10) loads every compiled kernel into memory mappings of its own;
a gradient program of a small network takes ~2,500 of them, and they stay while the
program is cached. Linux allows a process 65,530 mappings (``vm.max_map_count``);
past that XLA's compiler segfaults. A test suite compiles far more than that in one
process, so after any test that leaves more than ``_MAX_MAPPINGS`` mappings the
caches are cleared (which unmaps the programs; measured: 3,088 -> 612 mappings).
Clearing only then keeps the programs that neighbouring tests share."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

_MAX_MAPPINGS = 25_000
_MAPS = f"/proc/{os.getpid()}/maps"


def memory_mappings() -> int:
    """Memory mappings of this process (0 where /proc is not available)."""
    try:
        with open(_MAPS) as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True)
def _drop_compiled_programs_when_mappings_run_high():
    yield
    if memory_mappings() > _MAX_MAPPINGS:
        jax.clear_caches()


@pytest.fixture(autouse=True, scope="module")
def _fresh_caches_per_module():
    # Where /proc is missing (macOS), fall back to clearing between modules.
    yield
    if not os.path.exists(_MAPS):
        jax.clear_caches()


# The test runner hands whole files to its two workers in collection order
# (``--dist loadfile``). Alphabetical order left one of the slowest files for last, and
# one worker ran it alone for minutes: hand out the slowest first (measured seconds of
# a file on one worker, 2026-11-23: gradient sweeps ~270 each, the rest 70-200).
_SLOWEST_FIRST = (
    "test_gradients_models.py", "test_gradients_models_2.py", "test_api.py",
    "test_benchmarks.py", "test_train.py", "test_first_spike.py", "test_notebooks.py",
    "test_gradients.py", "test_reference.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        if name in _SLOWEST_FIRST:
            return _SLOWEST_FIRST.index(name)
        return len(_SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept
