"""engine.sweep.split_groups: big groups split for the workers, by architecture first, packed back."""
import pytest

from common import UserError
from engine import make_config
from engine.sweep import makespan, split_groups
from engine.trainer import check_group


def runs(model, n, seed=0):
    return [make_config("exp", "synthetic", model, loss="kl", loss_hparams={"tau": float(i + 1)}, teachers=["t"],
                        seed=seed) for i in range(n)]


def test_small_groups_stay_whole():
    groups = [runs("cnn1d_student", 3), runs("cnn1d_student", 3, seed=1)]
    assert split_groups(groups, 2) == groups
    assert split_groups(groups, 1) == groups


def test_a_dominant_group_splits_by_architecture():
    big = runs("cnn1d_s100_shallow", 4) + runs("res1d_s100", 4)
    small = runs("cnn1d_student", 1, seed=1)
    out = split_groups([big, small], 2)                  # 8 + 1 on two workers: 4 | 4 + 1
    assert [(len(g), g[0].model) for g in out] == [(4, "cnn1d_s100_shallow"), (4, "res1d_s100"), (1, "cnn1d_student")]
    assert all(len({c.model for c in g}) == 1 for g in out)
    for g in out:
        check_group(g)


def test_one_architecture_splits_in_alternate_runs():
    big = runs("cnn1d_student", 8)
    out = split_groups([big], 2)
    assert [[c.loss_hparams["tau"] for c in g] for g in out] == [[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]]
    assert sorted([c.loss_hparams["tau"] for c in g] for g in split_groups([big], 4)) == \
        [[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]]


def test_teachers_first_then_their_students_split_over_the_workers():
    """A teacher group of two, then a large student group that must wait for one of them: both
    teachers train side by side, the students' group is split across the two workers."""
    t1, t2 = (make_config("exp", "synthetic", m, seed=0) for m in ("cnn1d_teacher", "cnn1d_medium"))
    students = [make_config("exp", "synthetic", "cnn1d_student", loss="kl", loss_hparams={"tau": float(i + 1)},
                            teachers=[t1.run_id]) for i in range(10)]
    other = [make_config("exp", "synthetic", "cnn1d_student", loss="kl", teachers=[t2.run_id], seed=1)]
    cost = lambda g: 5 * len(g) if g[0].is_teacher else 1 + len(g)       # noqa: E731  a teacher pass costs 1
    groups = [[t1, t2], students, other]
    assert makespan(groups, 2, cost) == 10 + 11 + 0     # the teachers (10), then the students (11); other runs beside
    out = split_groups(groups, 2, cost)
    assert [len(g) for g in out] == [1, 1, 5, 5, 1]
    assert makespan(out, 2, cost) == 5 + 6 + 2             # teachers side by side, the halves, then `other`
    for g in out:
        check_group(g)


def test_the_cost_counts_the_teacher_of_each_part():
    big = runs("cnn1d_s100_shallow", 6) + runs("res1d_s100", 2)
    teacher = lambda g: 6 + len(g)                       # noqa: E731  a teacher pass worth 6 runs
    assert split_groups([big], 2, cost=teacher) == [big[:6], big[6:]]       # 14 -> 12 | 8
    heavy = lambda g: 100 + len(g)                       # noqa: E731  a second part would double the work
    other = runs("cnn1d_student", 8, seed=1)
    assert split_groups([big, other], 2, cost=heavy) == [big, other]
    with pytest.raises(UserError):
        split_groups([big], 0)
