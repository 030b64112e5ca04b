"""Stint-level decisions: the agent chooses a plan for the next stint at each stop, and a
rule drives the laps in between.

A per-lap action cannot learn a per-stint trade: pushing for one lap moves the finishing
position by about 0.004 places in the 24-hour race, far below what a value-based agent
resolves from one lap's return. The decisions teams actually take at a stop are the next
stint's pace and fuel margin, so :class:`StintVecEnv` gives the agent one step per stint:
at the race's first line crossing and at every stop it picks a :class:`StintOption`
(:data:`STINT_OPTIONS`); until the next stop the car is driven by the fuel-to-finish rule
(:class:`engine.baselines.RuleStrategy`: stop when the fuel left would leave less than the
option's reserve at the next line, full tanks then a splash to the flag, tyres and driver
every second stop as the shipped cars' ``double-stint`` plans do, rain stops) at the option's
pace. A one-lap reserve saves about a stop in six hours and runs dry in about 5 % of them (the
fuel-use prior eats it: README "Risks"); a two-lap reserve almost never runs dry.

The same :class:`StintController` drives the laps when a trained stint agent races as a
strategy (:class:`StintAgentStrategy`), so training and evaluation make the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.actions import ACTION_TABLE
from engine.baselines import _WITH_PACE, RuleStrategy
from engine.scenario import Scenario
from engine.strategy import Observation
from engine.vec_env import Decision, RaceVecEnv, RewardSpec, Transitions
from events.interface import EventModel
from world_model.interface import LapModel, PaceMode


@dataclass(frozen=True)
class StintOption:
    """What the agent decides for one stint."""

    pace: PaceMode
    """Pace of every lap of the stint (pushing is faster, burns more fuel and doubles the
    mechanical-failure hazard under the risk priors)."""
    reserve_laps: float
    """Stop when the fuel left would leave less than this many laps at the next line
    (at nominal consumption): the stint's fuel margin."""

    def __str__(self) -> str:
        return f"{self.pace.name.lower()}, reserve {self.reserve_laps:g} laps"


STINT_OPTIONS: tuple[StintOption, ...] = tuple(
    StintOption(pace, reserve)
    for pace in (PaceMode.NORMAL, PaceMode.PUSH)
    for reserve in (1.0, 2.0)
)
"""The stint agent's actions: pace (normal or push) x fuel reserve (1 or 2 laps): the two
reserves that trade mean for tail in the six-hour race (``double-stint`` against
``double-stint:laps=2``, car #8, README "Risks"); a 0.5-lap reserve runs dry in a fifth of
the races and is worse in both."""

TYRE_STINTS = 2.0
"""Tyres and driver change every this many stints between the agent's stops (``double-stint``)."""

N_STINT_OPTIONS = len(STINT_OPTIONS)

_MAX_CARS = 256
"""Cars per race the controller's state is laid out for (replica x 256 + car)."""


def stint_option_features() -> torch.Tensor:
    """One row per option ``[N_STINT_OPTIONS, 2]``: pushes, reserve above the smallest."""
    low = min(o.reserve_laps for o in STINT_OPTIONS)
    return torch.tensor(
        [[float(o.pace == PaceMode.PUSH), o.reserve_laps - low] for o in STINT_OPTIONS]
    )


class StintController:
    """Per replica, the option in force and the laps it drives.

    :meth:`plan` answers every car at the line with its rule's action and says which rows
    end a stint (the race's first crossing, or a stop) and so wait for a new option;
    :meth:`apply` sets those rows' options and gives their actions. A replica's race is new
    when its lap count falls (the next race of a chunked evaluation reuses replica indices).
    """

    def __init__(self) -> None:
        self.rules = {
            r: RuleStrategy(name=f"stint-reserve{r:g}", reserve_laps=r, tyre_stints=TYRE_STINTS)
            for r in sorted({o.reserve_laps for o in STINT_OPTIONS})
        }
        self._reserves = torch.tensor([o.reserve_laps for o in STINT_OPTIONS])
        self._paces = torch.tensor([int(o.pace) for o in STINT_OPTIONS])
        self.option = torch.zeros(0, dtype=torch.int64)
        self.last_lap = torch.zeros(0)

    @staticmethod
    def _key(obs: Observation) -> torch.Tensor:
        return obs.replica * _MAX_CARS + obs.car

    def _grow(self, keys: torch.Tensor) -> None:
        need = int(keys.max()) + 1 if keys.numel() else 0
        if need > self.option.shape[0]:
            extra = need - self.option.shape[0]
            self.option = torch.cat([self.option, torch.zeros(extra, dtype=torch.int64)])
            self.last_lap = torch.cat([self.last_lap, torch.full((extra,), float("inf"))])

    def plan(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(rule actions ``[n]`` at the normal pace, rows that end a stint ``[n]`` bool)."""
        rep = self._key(obs)
        self._grow(rep)
        new_race = obs.lap <= self.last_lap.index_select(0, rep)
        self.last_lap.index_copy_(0, rep, obs.lap.float())
        option = torch.where(new_race, 0, self.option.index_select(0, rep))
        reserve = self._reserves.index_select(0, option)
        actions = torch.empty_like(obs.car)
        for value, rule in self.rules.items():
            rows = (reserve == value).nonzero().squeeze(1)
            if rows.numel():
                part = rule.decide(obs.index(rows), legal.index_select(0, rows), generator)
                actions.index_copy_(0, rows, part)
        ends = new_race | ACTION_TABLE.pit.index_select(0, actions)
        self.option.index_copy_(0, rep, option)
        return actions, ends

    def apply(
        self, obs: Observation, actions: torch.Tensor, rows: torch.Tensor, options: torch.Tensor
    ) -> torch.Tensor:
        """Set the options of rows ``rows`` and return every row's action at its pace."""
        if rows.numel():
            self.option.index_copy_(0, self._key(obs).index_select(0, rows), options)
        pace = self._paces.index_select(0, self.option.index_select(0, self._key(obs)))
        return _WITH_PACE[pace, actions]


class StintVecEnv:
    """:class:`engine.vec_env.RaceVecEnv` with one step per stint (see the module docstring).

    The same interface as ``RaceVecEnv`` (``reset``, ``step``, ``episodes_finished``,
    ``scenario``, ``car``, ``encoder``, ``reward``, ``replicas``); a decision's mask has
    :data:`N_STINT_OPTIONS` columns, all legal (the rule makes each option's laps legal).
    A transition's reward is the sum of the lap rewards over the stint: with ``gamma = 1``
    the potential shaping telescopes to the change of the class-position potential.
    """

    def __init__(
        self,
        scenario: Scenario,
        replicas: int,
        *,
        car: str | None = None,
        reward: RewardSpec | None = None,
        lap_model: LapModel | None = None,
        event_model: EventModel | None = None,
        lap_env: RaceVecEnv | None = None,
    ) -> None:
        reward = reward or RewardSpec(gamma=1.0)
        if reward.gamma != 1.0:
            raise ValueError("stint decisions sum lap rewards: the reward's gamma must be 1")
        self.lap_env = lap_env or RaceVecEnv(
            scenario,
            replicas,
            car=car,
            reward=reward,
            lap_model=lap_model,
            event_model=event_model,
        )
        self.scenario, self.car = self.lap_env.scenario, self.lap_env.car
        self.encoder, self.reward = self.lap_env.encoder, self.lap_env.reward
        self.replicas = self.lap_env.replicas
        self.episodes_finished: list[float] = []
        self._generator = torch.Generator()

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self.lap_env, "close", None)
        if close is not None:
            close()

    def reset(self, seed: int) -> Decision:
        self.lap_env.episodes_finished = self.episodes_finished
        self.controller = StintController()
        self._generator.manual_seed(seed)
        r = self.replicas
        self._start_obs: np.ndarray | None = None
        self._start_mask = np.ones((r, N_STINT_OPTIONS), bool)
        self._act = np.zeros(r, np.int64)
        self._rew = np.zeros(r)
        self._open = np.zeros(r, bool)
        """The replica chose a stint whose transition is not complete yet."""
        self._lap_dec: Decision | None = self.lap_env.reset(seed)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        done, dec = self._run(Transitions.empty())
        assert dec is not None and not len(done), "the race ended before the first stint"
        return dec

    def step(self, options: np.ndarray) -> tuple[Transitions, Decision | None]:
        """Answer the replicas waiting at a stint's end with their next stints' options."""
        if self._lap_dec is None or self._pending is None:
            raise RuntimeError("step() before reset() or after the generation ended")
        options = np.asarray(options, dtype=np.int64).reshape(-1)
        if ((options < 0) | (options >= N_STINT_OPTIONS)).any():
            raise ValueError(f"stint options must lie in [0, {N_STINT_OPTIONS})")
        actions, ends = self._pending
        rows = ends.nonzero().squeeze(1)
        ids = self._lap_dec.ids[rows.numpy()]
        self._act[ids] = options
        self._open[ids] = True
        acts = self.controller.apply(self._lap_dec.raw, actions, rows, torch.as_tensor(options))
        return self._advance(acts.numpy())

    def _advance(self, lap_actions: np.ndarray) -> tuple[Transitions, Decision | None]:
        trans, self._lap_dec = self.lap_env.step(lap_actions)
        return self._run(trans)

    def _run(self, trans: Transitions) -> tuple[Transitions, Decision | None]:
        """Drive the laps until some replicas end a stint (or every race ends); the stint
        transitions completed on the way."""
        done: list[Transitions] = []
        while True:
            done.append(self._collect(trans))
            dec = self._lap_dec
            if dec is None:
                return Transitions.concat([t for t in done if len(t)]), None
            legal = torch.as_tensor(dec.mask)
            actions, ends = self.controller.plan(dec.raw, legal, self._generator)
            ids = dec.ids[ends.numpy()]
            if len(ids):
                self._pending = (actions, ends)
                done.append(self._close(ids, dec, ends.numpy()))
                agent = Decision(
                    ids=ids,
                    obs=dec.obs[ends.numpy()],
                    mask=np.ones((len(ids), N_STINT_OPTIONS), bool),
                    raw=dec.raw.index(ends),
                )
                self._stint_start(agent)
                return Transitions.concat([t for t in done if len(t)]), agent
            none = torch.zeros(0, dtype=torch.int64)
            acts = self.controller.apply(dec.raw, actions, none, none)
            trans, self._lap_dec = self.lap_env.step(acts.numpy())

    def _collect(self, trans: Transitions) -> Transitions:
        """Add the lap rewards to their stints; the stints the race's end closes."""
        if not len(trans):
            return Transitions.empty()
        np.add.at(self._rew, trans.ids, trans.rew)
        ended = trans.ids[trans.terminated & self._open[trans.ids]]
        if not len(ended):
            return Transitions.empty()
        return self._emit(ended, terminated=True, obs_next=None)

    def _close(self, ids: np.ndarray, dec: Decision, rows: np.ndarray) -> Transitions:
        """The stint transitions of replicas ``ids`` (now at a stint's end), if any is open."""
        open_ = self._open[ids]
        if not open_.any():
            return Transitions.empty()
        return self._emit(ids[open_], terminated=False, obs_next=dec.obs[rows][open_])

    def _emit(self, ids: np.ndarray, terminated: bool, obs_next: np.ndarray | None) -> Transitions:
        assert self._start_obs is not None
        obs = self._start_obs[ids]
        out = Transitions(
            ids=ids,
            obs=obs,
            mask=self._start_mask[ids],
            act=self._act[ids],
            rew=self._rew[ids].copy(),
            terminated=np.full(len(ids), terminated),
            obs_next=obs if obs_next is None else obs_next,
            mask_next=self._start_mask[ids],
            illegal=np.zeros(len(ids), bool),
        )
        self._rew[ids] = 0.0
        self._open[ids] = False
        return out

    def _stint_start(self, agent: Decision) -> None:
        if self._start_obs is None:
            self._start_obs = np.zeros((self.replicas, agent.obs.shape[1]), np.float32)
        self._start_obs[agent.ids] = agent.obs
        self._rew[agent.ids] = 0.0


class StintAgentStrategy:
    """A stint-level scorer as an ``engine.strategy.Strategy``: the controller drives the
    laps and, at each stint's end, the option with the best score is taken (or the one
    ``pick`` draws from the scores, every option legal, with the strategy's generator).

    ``score`` maps encoded observations ``[n, D]`` to option scores ``[n, K]``; ``encode``
    is the observation encoder the agent was trained with.
    """

    def __init__(
        self,
        name: str,
        encode: Callable[[Observation], torch.Tensor],
        score: Callable[[torch.Tensor], torch.Tensor],
        pick: Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        self.name = name
        self.encode = encode
        self.score = score
        self.pick = pick
        self.controller = StintController()
        self.option_counts = torch.zeros(N_STINT_OPTIONS, dtype=torch.int64)
        """Stints started with each option so far (what the agent chose, for reports)."""

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        actions, ends = self.controller.plan(obs, legal, generator)
        rows = ends.nonzero().squeeze(1)
        options = torch.zeros(0, dtype=torch.int64)
        if rows.numel():
            scores = self.score(self.encode(obs.index(rows)))
            if self.pick is None:
                options = scores.argmax(dim=1)
            else:
                options = self.pick(scores, torch.ones_like(scores, dtype=torch.bool), generator)
            self.option_counts += torch.bincount(options, minlength=N_STINT_OPTIONS)
        return self.controller.apply(obs, actions, rows, options)
