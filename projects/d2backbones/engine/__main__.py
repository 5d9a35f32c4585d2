"""``python -m d2backbones.engine``: ``tools/train_net.py`` for code that must not import tools/."""
from .cli import run

if __name__ == "__main__":
    run()
