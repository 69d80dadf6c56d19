"""The ``eventsnn`` command line.

```
eventsnn train yin-yang [--neuron lif] [--hidden 120] [--epochs 20] [--out runs/yin-yang]
eventsnn simulate [--neuron lif] [--hidden 20] [--t-max 50] [--out runs/simulate]
python -m eventsnn train --help
```

Each subcommand is one entry of `COMMANDS`: a function that adds its arguments to an
``argparse`` parser and a function that runs it and returns the exit status. To add a
subcommand, write those two functions in a module of this package and add one entry.

Every subcommand keeps its compiled programs in JAX's persistent compilation cache
(``--compile-cache DIR``, default ``~/.cache/eventsnn/xla``; ``--no-compile-cache``):
a second run with the same shapes and settings loads them instead of compiling.
"""

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ._common import compile_cache_arguments, use_compile_cache
from .simulate import _simulate, _simulate_arguments, demo_input as demo_input
from .train import _train, _train_arguments


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "train": Command(
        "train a spiking network with exact gradients on a built-in dataset",
        _train_arguments,
        _train,
    ),
    "simulate": Command(
        "simulate a small network on a built-in input; print its spikes, plot them",
        _simulate_arguments,
        _simulate,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventsnn",
        description="Event-driven spiking neural networks in JAX.",
    )
    version = importlib.import_module("eventsnn").__version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        compile_cache_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventsnn`` command.

    **Arguments:** `argv`: the arguments (default: ``sys.argv[1:]``).

    **Returns:** the exit status (``0`` on success).
    """
    args = build_parser().parse_args(argv)
    use_compile_cache(args)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
