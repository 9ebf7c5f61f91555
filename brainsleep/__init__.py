"""brainsleep: Sleep Replay Consolidation for ANNs, simulated with Brian2."""

__version__ = "0.1.0"
