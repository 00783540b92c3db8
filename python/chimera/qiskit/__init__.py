"""CHIMERA for Qiskit users (``pip install chimera-engine[qiskit]``): ``SamplerV2`` and
``EstimatorV2`` on the native simulator, and ``ChimeraBackend`` (``BackendV2``)."""

from .backend import ChimeraBackend
from .primitives import EstimatorV2, SamplerV2

__all__ = ["ChimeraBackend", "EstimatorV2", "SamplerV2"]
