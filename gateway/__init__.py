"""gateway: a synchronous Python API gateway in the tradition of Kong Gateway."""

__version__ = "0.1.0"
