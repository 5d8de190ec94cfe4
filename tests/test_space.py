import pytest

from autoprune.errors import SpaceError, UnknownNameError
from autoprune.space import load_space, parse_space, space_for_model

GOOD = {"model": "m", "num_layers": 12}


def test_shipped_space_for_tiny_is_valid():
    space = space_for_model("moirai-tiny", 12)
    assert space.num_layers == 12 and space.objectives == ("mase", "params", "latency_ms")
    assert space.size == 4095 - 1  # every non-empty keep set except the full model


def test_default_space_for_an_unknown_alias():
    space = space_for_model("someone-else", 6)
    assert space.upper == 5 and space.min_kept == 1


@pytest.mark.parametrize(
    "change,message",
    [
        ({"min_kept": 13}, "min_kept = 13 must be between 1 and 12"),
        ({"min_kept": 6, "max_kept": 4}, "min_kept = 6 is larger than max_kept = 4"),
        ({"always_keep": [0, 12]}, "always_keep = 12 must be between 0 and 11"),
        ({"objectives": ["mase", "flops"]}, "unknown objective 'flops'"),
        ({"objectives": ["params"]}, "exactly one accuracy objective"),
        ({"objectives": {"mase": "max"}}, "objectives.mase = 'max' is not allowed"),
        ({"realign": {"steps": -1}}, "realign.steps = -1"),
        ({"realign": {"lr": 5}}, "realign.lr = 5"),
        ({"realign": {"epochs": 3}}, "realign.epochs = 3 is not a known key"),
        ({"layers": 3}, "layers = 3 is not a known key"),
    ],
)
def test_impossible_spaces_are_rejected_naming_key_and_value(change, message):
    with pytest.raises((SpaceError, UnknownNameError)) as info:
        parse_space({**GOOD, **change}, "x.toml")
    assert str(info.value).startswith("x.toml")
    assert message in str(info.value)


def test_malformed_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("num_layers = [")
    with pytest.raises(SpaceError, match="not valid TOML"):
        load_space(path)


def test_layer_count_must_match_the_model(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('model = "m"\nnum_layers = 12\n')
    with pytest.raises(SpaceError, match="model has 24"):
        space_for_model("m", 24, path)


def test_repair_respects_bounds_and_always_keep():
    space = parse_space({**GOOD, "always_keep": [0], "min_kept": 3, "max_kept": 4}, "x")
    assert space.keep_from_flags({i: False for i in space.droppable}) == (0, 1, 2)
    assert space.keep_from_flags({i: True for i in space.droppable}) == (0, 1, 2, 3)
    for keep in [(0, 1, 2), (0, 5, 7, 9)]:
        assert space.contains(keep)
    assert not space.contains((1, 2, 3))
