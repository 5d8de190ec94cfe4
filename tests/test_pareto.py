import re

import numpy as np
import pytest

from autoprune.errors import UnknownNameError
from autoprune.pareto import (
    default_rule,
    hv_reference,
    hypervolume,
    knee,
    non_dominated,
    parse_rule,
    rule_met,
    select,
)

OBJ = ["mase", "params", "latency_ms"]


def test_non_dominated_by_hand():
    pts = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6]])
    assert non_dominated(pts).tolist() == [True, True, True, False, True, False]


def test_non_dominated_three_objectives():
    pts = np.array([[1, 1, 9], [1, 2, 9], [9, 9, 1], [2, 2, 2]])
    assert non_dominated(pts).tolist() == [True, False, True, True]


def test_hypervolume_by_hand():
    ref = np.array([4.0, 4.0])
    # union of [1,4]x[3,4] (3) and [3,4]x[1,4] (3), overlap [3,4]x[3,4] (1), plus (2,2) box
    assert hypervolume(np.array([[1.0, 3.0], [3.0, 1.0]]), ref) == pytest.approx(5.0)
    assert hypervolume(np.array([[2.0, 2.0]]), ref) == pytest.approx(4.0)
    # a point outside the reference box adds nothing
    assert hypervolume(np.array([[5.0, 0.0]]), ref) == 0.0
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_hv_reference_point():
    assert hv_reference(OBJ).tolist() == [1.1, 1.0, 1.0]


def test_knee_is_closest_to_ideal():
    front = np.array([[1.0, 10.0], [1.2, 4.0], [3.0, 3.5], [6.0, 1.0]])
    # scaled: (0,1) (0.04,0.33) (0.4,0.28) (1,0) -> the second is nearest the origin
    assert knee(front) == 1


def test_budget_rule_absolute_and_relative():
    front = np.array([[1.0, 100.0, 10.0], [1.5, 50.0, 5.0], [3.0, 10.0, 1.0]])
    full = [1.0, 100.0, 10.0]
    assert select(parse_rule("budget:params<=60", OBJ), OBJ, front, full) == 1
    assert select(parse_rule("budget:params<=10%", OBJ), OBJ, front, full) == 2
    assert select(parse_rule("budget:latency_ms<=100", OBJ), OBJ, front, full) == 0
    assert select(parse_rule("budget:params<=5", OBJ), OBJ, front, full) is None
    assert str(parse_rule("budget:params<=10%", OBJ)) == "budget:params<=10%"


@pytest.mark.parametrize("text", ["best", "budget:params", "budget:flops<=3", "budget:params<=x"])
def test_bad_rules_are_named(text):
    with pytest.raises(UnknownNameError, match="rule"):
        parse_rule(text, OBJ)


def test_within_rule_picks_the_cheapest_point_close_enough_to_the_full_model():
    # full model: mase 1.0; points 1% / 4% / 12% worse, and one better than the full model
    front = np.array([[0.99, 90.0, 9.0], [1.01, 60.0, 6.0], [1.04, 30.0, 3.0], [1.12, 10.0, 1.0]])
    full = [1.0, 100.0, 10.0]
    pick = {x: select(parse_rule(f"within:mase<={x}%", OBJ), OBJ, front, full) for x in (0, 1, 5)}
    assert pick == {0: 0, 1: 1, 5: 2}
    assert select(parse_rule("within:mase<=20%", OBJ), OBJ, front, full) == 3
    assert str(parse_rule("within:mase<=2.5%", OBJ)) == "within:mase<=2.5%"


def test_within_rule_ties_on_parameters_go_to_lower_latency_then_accuracy():
    front = np.array([[1.03, 30.0, 4.0], [1.02, 30.0, 3.0], [1.01, 30.0, 3.0], [1.2, 5.0, 1.0]])
    assert select(parse_rule("within:mase<=5%", OBJ), OBJ, front, [1.0, 100.0, 10.0]) == 2


def test_within_rule_without_a_point_close_enough_selects_the_most_accurate_and_says_so():
    front = np.array([[1.3, 30.0, 3.0], [1.2, 60.0, 6.0], [1.2, 50.0, 7.0], [1.5, 10.0, 1.0]])
    full = [1.0, 100.0, 10.0]
    rule = parse_rule("within:mase<=5%", OBJ)
    assert select(rule, OBJ, front, full) == 2  # most accurate, then fewest parameters
    assert not rule_met(rule, OBJ, front[2], full)
    assert rule_met(parse_rule("within:mase<=20%", OBJ), OBJ, front[2], full)
    assert rule_met(parse_rule("knee", OBJ), OBJ, front[3], full)


def test_the_default_rule_is_the_study_accuracy_no_worse_than_the_full_model():
    assert default_rule(OBJ) == "within:mase<=0%"
    assert default_rule(["crps", "params"]) == "within:crps<=0%"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("within:mase<=2", "within:mase<=2%"),  # a percentage, not an absolute value
        ("within:params<=2%", "accuracy objective"),
        ("within:crps<=2%", "names 'crps'"),
        ("within:mase<=-1%", "must be 0 or more"),
        ("within:mase<=x%", "unknown selection rule"),
        ("within:mase", "unknown selection rule"),
    ],
)
def test_bad_within_rules_say_what_to_write(text, says):
    with pytest.raises(UnknownNameError, match=re.escape(says)):
        parse_rule(text, OBJ)
