"""``python -m d2backbones.benchmarking``: the command line of ``tools/benchmark.py``
(which runs each config through it, in a fresh process)."""
from .cli import main

main()
