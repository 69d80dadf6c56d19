"""Forward-only simulation throughput (samples/s) versus hidden size and batch size.

Question: how many samples per second does each library simulate (forward pass only:
the output first-spike times of a 5-H-3 LIF network, float32, steady state, compile
time separate), for H = 30 ... 1000 at batch 32 and batch 1 ... 4096 at H = 120? The
same sweeps as scaling.py. Every peer's output first-spike times are compared with
eventsnn's at every size (``output_check``). eventax is run up to
``--eventax-max-hidden`` / ``--eventax-max-batch`` (defaults 500 and 1024).

Usage: ``python benchmarks/forward.py [--smoke] [--device cpu|gpu] [--no-peers]``
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _sweep  # noqa: E402

NAME = "forward"
CAPS = {"eventax": (500, 1024), "jaxsnn": (1000, 4096)}


def main(argv=None) -> dict:
    return _sweep.main(NAME, __doc__, "forward", CAPS, argv)


if __name__ == "__main__":
    main()
