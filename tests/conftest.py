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

# The suite's cost is XLA compiling (the networks are tiny: running them takes little):
# let LLVM spend less effort optimising machine code. Measured on the 2-core CI
# machine, 2026-11-23: 19-32 % less CPU time for gradient and training tests; the whole
# suite 15.1 -> 13.2 min (with the file order below). Same results: no fast-math, the
# flags only skip optimisations. Set before jax is imported; the subprocesses tests
# start inherit it. Users' programs are compiled with XLA's defaults; the tests that
# compare two programs bit for bit compile with those (helpers.USER_COMPILE).
# XLA:CPU's newer fusion emitters (MLIR) cost more compile time than the classic
# elemental emitter: 30-40 % less compile time without them on the QIF gradient
# programs of the per-model sweep, and the whole suite 17.3 -> 9.1 min (2026-11-30).
_FAST_COMPILE = ("--xla_backend_optimization_level=0 "
                 "--xla_llvm_disable_expensive_passes=true "
                 "--xla_cpu_use_fusion_emitters=false")
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}"

# The command line keeps compiled programs in ~/.cache/eventsnn/xla by default; the
# suite (and the subprocesses it starts) write theirs into a folder of its own.
if "eventsnn-tests" not in os.environ.get("XDG_CACHE_HOME", ""):
    import tempfile

    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="eventsnn-tests-")

import jax  # noqa: E402
import pytest  # noqa: E402

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


# The test runner hands whole files to its two workers (``--dist loadfile``), in
# collection order only with ``--no-loadscope-reorder`` (pyproject.toml; by default
# pytest-xdist 3.8 starts with the files that hold the most tests, which left a
# gradient sweep for last, run alone for minutes). Hand out the slowest first
# (seconds of a file on one worker, 2026-11-30: 100-175 each, the rest under 100).
_SLOWEST_FIRST = (
    "test_first_spike_ode.py", "test_gradients_models_2.py", "test_gradients_models.py",
    "test_benchmarks.py", "test_train.py", "test_notebooks.py", "test_api.py",
    "test_superpose.py", "test_first_spike.py", "test_gradients.py", "test_reference.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        if name in _SLOWEST_FIRST:
            return _SLOWEST_FIRST.index(name)
        return len(_SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept
