"""crmhub: every customer communication, attributed and on one timeline."""

__version__ = "0.1.0"
