"""Input sizes on the command line and in records: ``1024`` (square) or ``800x1333``."""
import argparse

__all__ = ["format_size", "parse_size"]


def parse_size(text):
    """'1024' -> (1024, 1024); '800x1333' -> (800, 1333). An argparse ``type``."""
    try:
        sides = [int(side) for side in text.lower().split("x")]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) <= 0:
        raise argparse.ArgumentTypeError(f"input size must be N or HEIGHTxWIDTH in pixels, got {text!r}")
    return (sides[0], sides[-1])


def format_size(size):
    """(1024, 1024) -> 1024; (800, 1333) -> '800x1333'."""
    return size[0] if size[0] == size[1] else f"{size[0]}x{size[1]}"
