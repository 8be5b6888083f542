"""tickrec: record exchange market data losslessly, replay order books deterministically."""

__version__ = "0.1.0"
__all__ = ["__version__"]
