"""The one place where this package swaps an attribute of another library.

Some upstream code reads a value from a module global at call time and offers no
argument or hook to pass another one: detectron2's ``COCOEvaluator`` takes its fast
``COCOeval`` from ``coco_evaluation.COCOeval_opt`` and its record converter from
``coco_evaluation.instances_to_coco_json``, and ``lvis`` 0.5.3 calls
``np.float``, which numpy 1.24 removed. Where a subclass or an adapter can avoid it,
do that instead; where it cannot, set the attribute through ``temporarily_set`` so
that every such swap is scoped, restored, and findable by grepping for one name.
"""
import contextlib

__all__ = ["temporarily_set"]

_MISSING = object()


@contextlib.contextmanager
def temporarily_set(owner, name, value):
    """Set ``owner.name = value`` inside the ``with`` block, then put back what was there.

    The original is restored even when the block raises. If ``owner`` had no attribute
    ``name`` before, it is deleted on exit, so nothing new is left behind (``np.float``
    stays absent after the block, as numpy intends).

    Not thread-safe: another thread reading ``owner.name`` meanwhile sees ``value``.
    Use it only around single-threaded calls that need the swap.

    Args:
        owner: a module, class or object whose attribute is swapped.
        name (str): the attribute's name.
        value: what ``owner.name`` is for the duration of the block.
    """
    # Read the owner's own namespace where it has one: an attribute it only inherits
    # (from a class or a base class) must be deleted on exit, not copied onto it.
    if hasattr(owner, "__dict__"):
        original = vars(owner).get(name, _MISSING)
    else:
        original = getattr(owner, name, _MISSING)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
