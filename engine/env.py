"""The race as a Gymnasium environment: one car's strategist, deciding at every line crossing.

Registered as ``stintsim/Endurance-v0``::

    import gymnasium as gym
    env = gym.make("engine.env:stintsim/Endurance-v0", scenario="test_race")

(the ``engine.env:`` prefix makes Gymnasium import this module, which registers the id; after
``import engine.env`` the bare ``"stintsim/Endurance-v0"`` works too).

For fast collection use :class:`engine.vec_env.RaceVecEnv`, which steps many replicas of the
race in one batched engine call; this env is that vector env with a single replica.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from engine.actions import N_ACTIONS
from engine.scenario import Scenario, load_scenario
from engine.vec_env import OBS_BOUND, OBS_DIM, Decision, RaceVecEnv, RewardSpec
from events.interface import EventModel
from world_model.interface import LapModel

ENV_ID = "stintsim/Endurance-v0"


class RaceEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Race strategy for one car of a simulated endurance race.

    The agent is the strategist of the scenario's focus car (or ``car``). Each step is one
    decision at the line; between steps the engine simulates the whole field (every other
    car follows its own strategy from the scenario), with the scenario's lap model and event
    models (incidents, neutralisations, weather). An episode is one race.

    ## Action Space

    ``Discrete(147)``: an index into :data:`engine.actions.ACTIONS`, a pace mode for the
    coming lap (save / normal / push) combined with either staying out or a pit stop with a
    fuel amount (full tank or enough to finish), a tyre choice (keep, four soft / medium /
    hard / wet, or the most-worn axle), a driver change and a repair. Actions the rules
    forbid (pit lane closed under the safety car, no fuel for another lap, tyre sets used
    up, driving-time limits, repairs without damage) are masked: ``obs["mask"]`` and
    ``info["action_mask"]`` are 1 for legal actions. An illegal action is replaced by "stay
    out at normal pace" where legal, else by the first legal action, and
    ``info["illegal_action"]`` is True.

    ## Observation Space

    ``Dict(obs=Box(-5, 5, (40,), float32), mask=MultiBinary(147))``. ``obs`` is the team's view
    of its car at the line (:class:`engine.strategy.Observation`), normalised by
    :class:`engine.vec_env.ObservationEncoder` (columns named in
    :data:`engine.vec_env.FEATURES`): race time left (fraction of the race and in stints of
    fuel), fuel surplus over the laps left, lap, class and overall position, gaps to the
    cars ahead and behind in class (in pit losses and in laps), fuel, virtual energy, laps
    of fuel left, tread of each wheel and the least, tyre age, compound (one-hot), tyre sets
    left, damage, driver (one-hot) and their driving time, laps since the stop, flag state
    (one-hot), track wetness, the rain forecast for the next hour, and the pit-lane loss.

    ## Rewards

    ``objective="position"`` (default): at the finish ``-(class position - 1) / (class size
    - 1)`` (0 for a class win, -1 for last in class); before it, potential-based shaping
    ``gamma * Phi(s') - Phi(s)`` with ``Phi(s) = -shaping * (class position - 1) / (class
    size - 1)`` and ``Phi = 0`` at the finish. By Ng, Harada & Russell (1999) shaping of
    this form leaves the optimal policies unchanged; with ``gamma = 1`` it adds exactly
    ``-Phi(s_0)`` to every episode's return. ``objective="time"`` (single-car races over a
    fixed number of laps): minus the race time of each step in units of ten reference laps.

    ## Episode end

    Terminated when the car takes the chequered flag or retires; never truncated.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        scenario: str | Scenario = "test_race",
        car: str | None = None,
        objective: str = "position",
        shaping: float = 0.5,
        gamma: float = 0.999,
        lap_model: LapModel | None = None,
        event_model: EventModel | None = None,
    ) -> None:
        sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.vec = RaceVecEnv(
            sc,
            1,
            car=car,
            reward=RewardSpec(objective=objective, shaping=shaping, gamma=gamma),
            lap_model=lap_model,
            event_model=event_model,
        )
        self.observation_space = gym.spaces.Dict(
            {
                "obs": gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (OBS_DIM,), np.float32),
                "mask": gym.spaces.MultiBinary(N_ACTIONS),
            }
        )
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self._dec: Decision | None = None

    @staticmethod
    def _obs(dec: Decision, row: int = 0) -> dict[str, np.ndarray]:
        return {"obs": dec.obs[row].astype(np.float32), "mask": dec.mask[row].astype(np.int8)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        engine_seed = int(self.np_random.integers(0, 2**30))
        self._dec = self.vec.reset(engine_seed)
        self._last = self._obs(self._dec)
        return self._last, {"action_mask": self._last["mask"].astype(bool)}

    def step(
        self, action: np.int64 | int
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._dec is None:
            raise RuntimeError("step() after the episode ended; call reset()")
        trans, self._dec = self.vec.step(np.array([int(action)]))
        info: dict[str, Any] = {"illegal_action": bool(trans.illegal[0])}
        terminated = bool(trans.terminated[0])
        if self._dec is not None:
            self._last = self._obs(self._dec)
        if terminated:
            info["outcome"] = self.vec.episodes_finished[-1]
        info["action_mask"] = self._last["mask"].astype(bool)
        return self._last, float(trans.rew[0]), terminated, False, info


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="engine.env:RaceEnv")


register()
