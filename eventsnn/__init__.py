"""eventsnn: event-driven spiking neural networks in JAX with exact gradients."""

import importlib.metadata

from . import (
    augment as augment,
    datasets as datasets,
    encoding as encoding,
    losses as losses,
    neurons as neurons,
    plot as plot,
    train as train,
)
from ._current import step_current as step_current
from ._exact import AffineFlow as AffineFlow, ExactLinear as ExactLinear
from ._network import FeedForward as FeedForward
from ._neuron import AbstractNeuron as AbstractNeuron
from ._simulate import simulate as simulate
from ._solve import (
    AbstractSegmentSolver as AbstractSegmentSolver,
    DiffraxSegments as DiffraxSegments,
    ExactSegments as ExactSegments,
)
from ._spikes import (
    RESULTS as RESULTS,
    LayerSpikes as LayerSpikes,
    Spikes as Spikes,
    check as check,
)
from .neurons import (
    EIF as EIF,
    IAF as IAF,
    LIF as LIF,
    QIF as QIF,
    AdEx as AdEx,
    AlphaLIF as AlphaLIF,
    DeltaLIF as DeltaLIF,
    Izhikevich as Izhikevich,
    Refractory as Refractory,
)

try:
    __version__ = importlib.metadata.version("eventsnn")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
