"""Every public function, class and method documents its arguments and what it returns,
in the house style (``**Arguments:**`` / ``**Returns:**`` sections, see
``../shared/STYLE.md``).

Public means: what ``eventsnn/__init__.py`` exports, and the public names of the
submodules ``losses``, ``encoding``, ``augment``, ``datasets``, ``plot``, ``neurons``
and ``train``
(and of their own public submodules, e.g. ``eventsnn.datasets.yin_yang``); for a class,
its public methods, ``__call__`` and its properties, down the part of its MRO that
lives in eventsnn. The rules:

- a function or method that takes arguments (besides ``self``/``cls``) has an
  ``**Arguments:**`` section, and every one of its parameters is named in backticks in
  its docstring (so a renamed argument cannot leave the docstring behind);
- a function or method has a ``**Returns:**`` section unless it is in
  `RETURNS_NOTHING` (each of which is annotated ``-> None``: checked);
- a class whose constructor takes arguments has an ``**Arguments:**`` section (or
  ``**Fields:**``, the style of result containers such as ``Spikes``, whose fields are
  the constructor's arguments) naming each of them;
- a property has a docstring (it reads as an attribute, so no sections).

An override may inherit its docstring from the method it overrides (``inspect.getdoc``
looks it up the MRO), as the five methods of each shipped neuron model do from
``AbstractNeuron``; its own parameter names are still checked against that docstring.
"""

import importlib
import inspect
import pkgutil
import types

import equinox as eqx
import pytest

import eventsnn

PUBLIC_SUBMODULES = ("losses", "encoding", "augment", "datasets", "plot", "neurons",
                     "train")

ARGUMENTS, FIELDS, RETURNS = "**Arguments:**", "**Fields:**", "**Returns:**"

# Public functions and methods that return nothing (each must be annotated `-> None`).
RETURNS_NOTHING = {
    "eventsnn._neuron.AbstractNeuron.check_state",
}


def _modules() -> list[types.ModuleType]:
    modules = [eventsnn]
    for name in PUBLIC_SUBMODULES:
        module = importlib.import_module(f"eventsnn.{name}")
        modules.append(module)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                modules.append(importlib.import_module(f"{module.__name__}.{info.name}"))
    return modules


def _module_members(module: types.ModuleType):
    """Public classes and functions of ``module``: those in ``__all__`` if it has one;
    else, for a package, everything it re-exports, and for a plain module what it
    defines itself (not what it imports)."""
    listed = getattr(module, "__all__", None)
    exports = listed is not None or hasattr(module, "__path__")
    names = listed or [name for name in vars(module) if not name.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        home = getattr(obj, "__module__", "") or ""
        if home.startswith("eventsnn") and (exports or home == module.__name__):
            yield obj


def _class_members(cls):
    """``(owner, name, raw attribute)`` for the public methods, ``__call__`` and
    properties that ``cls`` or one of its eventsnn base classes defines."""
    for owner in cls.__mro__:
        if not owner.__module__.startswith("eventsnn"):
            continue
        for name, raw in vars(owner).items():
            if name.startswith("_") and name != "__call__":
                continue
            kinds = (property, classmethod, staticmethod)
            if isinstance(raw, kinds) or inspect.isfunction(raw):
                yield owner, name, raw


def _public_objects() -> dict[str, tuple]:
    """``qualified name -> (kind, object, owner, raw)``, each object once, at the class
    that defines it."""
    found: dict[str, tuple] = {}
    for module in _modules():
        for obj in _module_members(module):
            qualname = f"{obj.__module__}.{obj.__qualname__}"
            if inspect.isfunction(obj):
                found.setdefault(qualname, ("function", obj, None, obj))
                continue
            found.setdefault(qualname, ("class", obj, None, obj))
            for owner, name, raw in _class_members(obj):
                key = f"{owner.__module__}.{owner.__qualname__}.{name}"
                kind = "property" if isinstance(raw, property) else "method"
                found.setdefault(key, (kind, obj, owner, raw))
    return found


PUBLIC = _public_objects()


def _parameters(kind, obj, owner, raw) -> list[inspect.Parameter]:
    if kind == "class":
        if issubclass(obj, eqx.Enumeration):
            return []  # members are listed, never passed
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return []
        return list(signature.parameters.values())
    function = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    params = list(inspect.signature(function).parameters.values())
    if owner is not None and not isinstance(raw, staticmethod):
        params = params[1:]  # self / cls
    return params


def _docstring(kind, obj, owner, raw) -> str:
    if kind == "class":
        return obj.__dict__.get("__doc__") or ""  # its own, not a base class's
    if kind == "property":
        return inspect.getdoc(raw) or ""
    if owner is None:
        return inspect.getdoc(obj) or ""
    # Looked up on the class so that an undocumented override inherits the docstring
    # of the method it overrides.
    function = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    return inspect.getdoc(getattr(owner, function.__name__)) or ""


def _mentions(doc: str, name: str) -> bool:
    return any(f"`{prefix}{name}`" in doc for prefix in ("", "*", "**"))


def test_walk_finds_the_public_api():
    # If the walk silently found nothing, every other test here would pass vacuously.
    expected = {
        "eventsnn._network.FeedForward",
        "eventsnn._network.FeedForward.__call__",
        "eventsnn._network.FeedForward.state_at_t",
        "eventsnn._simulate.simulate",
        "eventsnn._neuron.AbstractNeuron.dynamics",
        "eventsnn.neurons.lif.LIF",
        "eventsnn.neurons.lif.LIF.reset",
        "eventsnn._spikes.Spikes.first",
        "eventsnn.losses.first_spike_cross_entropy",
        "eventsnn.encoding.poisson",
        "eventsnn.datasets.yin_yang.yin_yang",
        "eventsnn.datasets._dataset.Dataset",
        "eventsnn.plot.raster",
        "eventsnn.train.fit",
    }
    assert expected <= PUBLIC.keys(), sorted(expected - PUBLIC.keys())
    # Private helpers stay out.
    assert not [name for name in PUBLIC if name.rsplit(".", 1)[1].startswith("_")
                and not name.endswith("__call__")]


def test_returns_nothing_list_is_honest():
    for name in RETURNS_NOTHING:
        assert name in PUBLIC, f"{name} is in RETURNS_NOTHING but not public (stale?)"
        kind, obj, owner, raw = PUBLIC[name]
        annotation = inspect.signature(raw).return_annotation
        assert annotation in (None, "None"), (
            f"{name} is in RETURNS_NOTHING but is not annotated `-> None`."
        )


def _problems(name: str, kind: str, obj, owner, raw) -> list[str]:
    """What is wrong with the docstring of one public object (empty if nothing)."""
    doc = _docstring(kind, obj, owner, raw)
    if not doc.strip():
        return ["no docstring"]
    if kind == "property":
        return []
    problems = []
    params = _parameters(kind, obj, owner, raw)
    if params:
        sections = (ARGUMENTS, FIELDS) if kind == "class" else (ARGUMENTS,)
        if not any(section in doc for section in sections):
            problems.append(f"no {' / '.join(sections)} section")
        missing = [p.name for p in params if not _mentions(doc, p.name)]
        if missing:
            problems.append(f"arguments not named in the docstring: {missing}")
    if kind in ("function", "method") and name not in RETURNS_NOTHING:
        if RETURNS not in doc:
            problems.append(f"no {RETURNS} section")
    return problems


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring(name):
    problems = _problems(name, *PUBLIC[name])
    assert not problems, f"{name}: " + "; ".join(problems)


def test_rules_fail_on_what_they_are_meant_to_catch():
    def scale(x, *, factor=1.0):
        """Multiplies ``x``."""
        return x * factor

    def renamed(x, *, factor=1.0):
        """Multiplies.

        **Arguments:**

        - `x`: an array.
        - `scale`: the factor.

        **Returns:** the product.
        """
        return x * factor

    def good(x, **kwargs):
        """Multiplies.

        **Arguments:** `x`: an array; `**kwargs`: ignored.

        **Returns:** ``x``.
        """
        return x

    class Container(eqx.Module):
        """Holds a value."""

        value: float

    assert _problems("scale", "function", scale, None, scale) == [
        f"no {ARGUMENTS} section", "arguments not named in the docstring: ['factor']",
        f"no {RETURNS} section"]
    assert _problems("renamed", "function", renamed, None, renamed) == [
        "arguments not named in the docstring: ['factor']"]
    assert _problems("good", "function", good, None, good) == []
    assert _problems("Container", "class", Container, None, Container) == [
        f"no {ARGUMENTS} / {FIELDS} section",
        "arguments not named in the docstring: ['value']"]
