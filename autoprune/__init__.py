"""autoprune: find which layers of a time-series foundation model can be removed."""

__version__ = "0.1.0"
