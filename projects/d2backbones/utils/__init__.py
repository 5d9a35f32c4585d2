"""Small helpers shared across the package that belong to no model family."""
from .parallel import unwrap_parallel
from .patching import temporarily_set

__all__ = ["temporarily_set", "unwrap_parallel"]
