"""A page of coloured boxes that shows live which version of the app answers."""

__version__ = "1.0.0"
