"""lemagen: learning-from-mistakes training data for math reasoning models."""

__version__ = "0.1.0"
