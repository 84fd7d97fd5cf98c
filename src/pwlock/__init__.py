"""pwlock: password-locked models and weak sample unlocking."""

__version__ = "0.1.0"
