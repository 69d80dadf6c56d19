"""Gradient-step time versus hidden size and versus batch size, eventsnn vs peers.

Question: how does the time of one gradient step (as in grad_step.py: 5-H-3 LIF,
first-spike cross-entropy, float32, steady state, compile time separate) grow with the
hidden size H = 30 ... 1000 (batch 32) and with the batch size 1 ... 4096 (H = 120)?
eventsnn runs EventProp in first-spike mode; jaxsnn and eventax run on the same weights,
inputs and labels, and their loss and gradient are compared with eventsnn's at every
size (``grad_rel_diff``). eventax takes seconds per step at H = 120, batch 32, and
grows with both H and the batch, so it is only run up to ``--eventax-max-hidden`` and
``--eventax-max-batch`` (defaults 120 and 32); rows above a cap are recorded as skipped.

Usage: ``python benchmarks/scaling.py [--smoke] [--device cpu|gpu] [--no-peers]``
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _sweep  # noqa: E402

NAME = "scaling"
CAPS = {"eventax": (120, 32), "jaxsnn": (1000, 4096)}


def main(argv=None) -> dict:
    return _sweep.main(NAME, __doc__, "grad", CAPS, argv)


if __name__ == "__main__":
    main()
