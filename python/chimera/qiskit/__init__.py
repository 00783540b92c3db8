"""CHIMERA for Qiskit users (``pip install chimera-engine[qiskit]``): ``SamplerV2`` and
``EstimatorV2`` on the native simulator."""

from .primitives import EstimatorV2, SamplerV2

__all__ = ["EstimatorV2", "SamplerV2"]
