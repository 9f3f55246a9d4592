"""normcli: fit, save and apply scaling statistics; train a numpy batch-norm MLP."""

__version__ = "0.1.0"
