"""Small helpers shared across the package that belong to no model family."""
from .patching import temporarily_set

__all__ = ["temporarily_set"]
