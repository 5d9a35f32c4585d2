"""temporarily_set, the one helper that swaps another library's attribute: the
swap is visible inside the block and undone on every way out of it."""
import types

import numpy as np
import pytest

from d2backbones.utils import temporarily_set


def test_sets_inside_and_restores_after():
    owner = types.SimpleNamespace(value=1)
    with temporarily_set(owner, "value", 2):
        assert owner.value == 2
    assert owner.value == 1


def test_restores_the_original_when_the_block_raises():
    owner = types.SimpleNamespace(value=1)
    with pytest.raises(ZeroDivisionError):
        with temporarily_set(owner, "value", 2):
            1 / 0
    assert owner.value == 1


def test_a_missing_attribute_is_deleted_again_even_on_error():
    owner = types.SimpleNamespace()
    with pytest.raises(KeyError):
        with temporarily_set(owner, "added", 3):
            assert owner.added == 3
            raise KeyError("boom")
    assert not hasattr(owner, "added")


def test_an_inherited_class_attribute_is_not_copied_onto_the_subclass():
    class Base:
        flag = "base"

    class Child(Base):
        pass

    with temporarily_set(Child, "flag", "child"):
        assert (Child.flag, Base.flag) == ("child", "base")
    assert "flag" not in vars(Child) and Child.flag == "base"


def test_numpy_float_alias_is_gone_after_the_block():
    # The LVIS evaluator's use: numpy >= 1.24 has no np.float, and must not keep one.
    with temporarily_set(np, "float", float):
        assert np.float is float
    assert "float" not in vars(np)
    with pytest.raises(AttributeError):
        np.float
