"""Task distributions: explicit seeding, splits, JSON round trip."""

import pytest
import torch
from conftest import gen

import metarl
from metarl.evaluation import Evaluator
from metarl.tasks import TaskBatch


@pytest.mark.parametrize("env_id", metarl.list_task_envs())
def test_same_seed_same_tasks_and_different_seed_different_tasks(env_id):
    d = metarl.make_distribution(env_id)
    a, b, c = (d.sample(8, "train", gen(s)) for s in (3, 3, 4))
    for k in a:
        assert torch.equal(a[k], b[k])
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("env_id", metarl.list_task_envs())
def test_json_round_trip_is_exact(env_id):
    d = metarl.make_distribution(env_id)
    for split in d.splits:
        t = d.sample(5, split, gen(1))
        back = TaskBatch.from_json(t.to_json())
        assert (back.family, back.split) == (t.family, t.split)
        for k in t:
            assert back[k].dtype == t[k].dtype and torch.equal(back[k], t[k])


@pytest.mark.parametrize("env_id", metarl.list_task_envs())
def test_evaluation_tasks_never_equal_training_tasks(env_id):
    d = metarl.make_distribution(env_id)
    train = d.sample(200, "train", gen(1))
    test = Evaluator(env_id, num_tasks=200).tasks("test")
    key = next(iter(train))
    a, b = train[key].reshape(200, -1), test[key].reshape(200, -1)
    if a.dtype.is_floating_point and a.shape[1] > 0 and torch.unique(a, dim=0).shape[0] > 2:
        assert not (a[:, None] == b[None]).all(-1).any(), "a test task equals a training task"


def test_point_nav_ood_goals_lie_outside_training_square():
    d = metarl.make_distribution("metarl/PointNav-v0")
    train = d.sample(5000, "train", gen(0))["goal"]
    ood = d.sample(5000, "ood", gen(0))["goal"]
    assert train.abs().max() <= 0.5
    inf_norm = ood.abs().max(dim=1).values
    assert (inf_norm > 0.5).all() and (inf_norm <= 1.0 + 1e-6).all()
    # uniform on the ring: each of the 4 sides gets about a quarter of the goals
    side = torch.where(ood[:, 0].abs() >= ood[:, 1].abs(), ood[:, 0].sign(), 2 * ood[:, 1].sign())
    counts = torch.stack([(side == s).sum() for s in (-2, -1, 1, 2)]).float()
    assert (counts / 5000 - 0.25).abs().max() < 0.03


def test_unknown_split_names_the_split_and_lists_the_allowed():
    d = metarl.make_distribution("metarl/PointNav-v0")
    with pytest.raises(
        ValueError, match=r"split='tset'.*'train', 'test', 'ood'.*Did you mean 'test'"
    ):
        d.sample(2, "tset", gen(0))


def test_sampling_without_generator_is_refused():
    d = metarl.make_distribution("metarl/PointNav-v0")
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        d.sample(2, "train")
