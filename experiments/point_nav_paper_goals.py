"""Write the 40 test goals of the MAML paper's 2D-navigation table as a metarl task batch.

    python experiments/point_nav_paper_goals.py   # -> experiments/point_nav_paper_test_goals.json

The official test script (``maml_examples/test_maml_point.py`` in cbfinn/maml_rl) drew its
goals with NumPy's legacy generator: ``np.random.seed(1)``, then 40 x 2 draws of
``uniform(-0.5, 0.5)``. Evaluate a run on them with

    metarl eval RUN_DIR --set eval.tasks_file=experiments/point_nav_paper_test_goals.json --out DIR

Their mean distance from the start is 0.401, against 0.361 for metarl's own 40 `test` goals
(evaluation seed 10000): a policy that stays at the origin scores -40.1 on them (the paper's
return before adaptation is -40.41) and -36.1 on ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metarl.tasks import TaskBatch

OUT = Path(__file__).resolve().parent / "point_nav_paper_test_goals.json"


def paper_goals() -> TaskBatch:
    # the legacy Mersenne-Twister stream that np.random.seed(1) starts
    goals = np.random.RandomState(1).uniform(-0.5, 0.5, size=(40, 2))
    return TaskBatch("point_nav", "test", {"goal": torch.tensor(goals, dtype=torch.float32)})


if __name__ == "__main__":
    OUT.write_text(paper_goals().to_json() + "\n")
    print(f"wrote {OUT}")
