"""Shipped neuron models, one per file."""

from .adex import AdEx as AdEx
from .alpha_lif import AlphaLIF as AlphaLIF
from .delta_lif import DeltaLIF as DeltaLIF
from .eif import EIF as EIF
from .iaf import IAF as IAF
from .izhikevich import Izhikevich as Izhikevich
from .lif import LIF as LIF
from .qif import QIF as QIF
from .refractory import Refractory as Refractory
