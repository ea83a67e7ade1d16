"""The README's registration example runs as written (the README must stay true)."""

import re
from pathlib import Path

import gymnasium as gym


def test_readme_registration_snippet_runs():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    exec(compile(snippet, "README.md", "exec"), {})
    env = gym.make("mylab/Reach1D-v0", task={"target": 0.3})
    env.reset(seed=0)
    _, reward, *_ = env.step([0.5])
    assert abs(reward - (-0.2)) < 1e-9


def test_readme_commands_match_ci():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci
    assert "pip install torch==2.13.0" in readme and "torch==2.13.0" in ci
