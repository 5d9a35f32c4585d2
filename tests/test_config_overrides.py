"""Override parsing, property-tested with hypothesis, and one-line config errors."""
import copy
import math

import pytest
from conftest import MICRO_CONFIG, cli_error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf

from d2backbones.engine.config import apply_override, load_config
from d2backbones.engine.errors import UsageError

BASE = load_config(MICRO_CONFIG)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def leaves(node, prefix=""):
    """(dotted key, value) of every scalar in the config that is not an interpolation or a target."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node._iter_ex(resolve=False))
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (DictConfig, ListConfig)):
            yield from leaves(value, path + ".")
        elif key != "_target_" and not (isinstance(value, str) and "${" in value):
            yield path, value


LEAVES = sorted(leaves(BASE))
BY_TYPE = {kind: [k for k, v in LEAVES if type(v) is kind] for kind in (bool, int, float, str)}
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-./", min_size=1, max_size=20)


def fresh():
    """A config to override, shared by the examples of a test: a deep copy costs more
    than the override itself, and every test here keeps each key's type."""
    return WORKING


WORKING = copy.deepcopy(BASE)
SCRATCH = copy.deepcopy(BASE)


def value_at(cfg, key):
    return OmegaConf.select(cfg, key)


def test_the_config_has_leaves_of_every_type():
    assert all(len(keys) >= 3 for keys in BY_TYPE.values()), {k: len(v) for k, v in BY_TYPE.items()}


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[int]), value=st.integers(-(2**62), 2**62))
def test_int_values_round_trip(key, value):
    cfg = fresh()
    apply_override(cfg, f"{key}={value}")
    assert value_at(cfg, key) == value and type(value_at(cfg, key)) is int


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[float]), value=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_float_values_round_trip(key, value):
    cfg = fresh()
    apply_override(cfg, f"{key}={value!r}")
    assert value_at(cfg, key) == value


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[bool]), value=st.booleans())
def test_bool_values_round_trip(key, value):
    cfg = fresh()
    apply_override(cfg, f"{key}={str(value).lower()}")
    assert value_at(cfg, key) is value


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[str]), value=SAFE_TEXT)
def test_quoted_string_values_round_trip(key, value):
    cfg = fresh()
    apply_override(cfg, f"{key}='{value}'")
    assert value_at(cfg, key) == value


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[str]), parts=st.tuples(SAFE_TEXT, st.sampled_from("= "), SAFE_TEXT))
def test_text_with_equals_or_spaces_is_taken_whole_as_a_string(key, parts):
    """detectron2 splits ``a=b=c`` at every ``=`` and fails; the value is everything after the first."""
    value = "".join(parts)
    cfg = fresh()
    apply_override(cfg, f"{key}={value}")
    assert value_at(cfg, key) == value


@SETTINGS
@given(key=st.sampled_from([k for k, _ in LEAVES]) | st.text(max_size=30), value=st.text(max_size=30))
def test_any_override_is_applied_or_refused_with_one_line(key, value):
    cfg = SCRATCH  # keys may change type here
    try:
        apply_override(cfg, f"{key}={value}")
    except UsageError as error:
        assert "\n" not in str(error)


@SETTINGS
@given(key=st.sampled_from(BY_TYPE[int]), value=st.floats(allow_nan=False).filter(lambda f: not float(f).is_integer()) | SAFE_TEXT.filter(lambda t: not t.lstrip("-").isdigit()))
def test_a_non_integer_for_an_int_key_is_a_type_error(key, value):
    cfg = fresh()
    text = repr(value) if isinstance(value, float) else value
    with pytest.raises(UsageError, match=f"type mismatch for {key}: it takes an int"):
        apply_override(cfg, f"{key}={text}")


@SETTINGS
@given(section=st.sampled_from(["model", "train", "optimizer", "dataloader"]), name=st.from_regex(r"[a-z]{3,12}_zz", fullmatch=True))
def test_unknown_keys_are_named(section, name):
    with pytest.raises(UsageError, match=f"unknown config key '{section}.{name}'"):
        apply_override(fresh(), f"{section}.{name}=1")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.max_iter=ten", "type mismatch for train.max_iter: it takes an int (now 200), but 'ten' is a str"),
        ("train.amp.enabled=1", "type mismatch for train.amp.enabled: it takes a bool"),
        ("optimizer.lr=fast", "type mismatch for optimizer.lr: it takes a number"),
        ("model.backbone=3", "type mismatch for model.backbone: it takes a section"),
        ("train.non_finite_loss_mode=skip", "did you mean train.non_finite_loss?"),
    ],
)
def test_cli_type_and_key_errors_are_one_line(override, expected, capsys):
    assert expected in cli_error_line(["--config-file", MICRO_CONFIG, override], capsys)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("old_style.yaml", "MODEL:\n  WEIGHTS: x\n", "is not a LazyConfig: pass a python config file"),
        ("broken.py", "model = dict(\n", "is not a LazyConfig: loading it raised SyntaxError"),
        ("raises.py", "import no_such_module_zz\n", "is not a LazyConfig: loading it raised ModuleNotFoundError"),
        ("script.py", "print('hello')\n", "is not a training LazyConfig: it defines no model"),
    ],
)
def test_a_config_file_that_is_not_a_lazyconfig_is_one_line(tmp_path, capsys, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert expected in cli_error_line(["--config-file", str(path)], capsys)


def test_engine_settings_exist_for_every_config():
    cfg = load_config(MICRO_CONFIG, ["train.non_finite_loss=skip", "train.strict_data=true"])
    assert cfg.train.non_finite_loss == "skip" and cfg.train.strict_data is True
    assert math.isclose(load_config(MICRO_CONFIG, ["optimizer.lr=2"]).optimizer.lr, 2.0)
