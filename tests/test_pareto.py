import numpy as np
import pytest

from autoprune.errors import UnknownNameError
from autoprune.pareto import (
    hv_reference,
    hypervolume,
    knee,
    non_dominated,
    parse_rule,
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
