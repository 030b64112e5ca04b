"""The race as a batched reinforcement-learning environment over the engine's replicas.

:class:`RaceVecEnv` controls one car in each of ``R`` simulated races at once through
:class:`engine.race.RaceSim`. The replicas share one race clock and are simulated together
in batched engine calls; a call to :meth:`RaceVecEnv.step` answers the replicas whose car is
at the line and runs the clock until the next such group (usually other replicas: each
decides once a lap, at its own crossing). All ``R`` races of a *generation* start together
from one seed; when every one has finished, :meth:`RaceVecEnv.reset` starts the next.

This module also owns the two things the single env (:mod:`engine.env`), the trainer and a
trained agent used as a strategy must agree on: the observation encoding
(:class:`ObservationEncoder`) and the reward (:class:`RewardSpec`). See
:class:`engine.env.RaceEnv` for the spaces and rewards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np
import torch

from engine.actions import N_ACTIONS, action_index
from engine.race import (
    DecisionPoint,
    RaceSim,
    StrategyAssignment,
    load_event_model,
    load_lap_model,
)
from engine.scenario import Scenario
from engine.strategy import Observation
from events.interface import EventModel
from world_model.interface import Compound, FlagState, LapModel, PaceMode

FEATURES: tuple[str, ...] = (
    "time_left_frac",
    "laps_left_stints",
    "fuel_surplus_stints",
    "lap_frac",
    "class_position_frac",
    "overall_position_frac",
    "gap_ahead_pits",
    "gap_behind_pits",
    "gap_ahead_laps",
    "gap_behind_laps",
    "fuel",
    "energy",
    "fuel_laps_left_stints",
    "tread_fl",
    "tread_fr",
    "tread_rl",
    "tread_rr",
    "tread_min",
    "tyre_age_stints",
    *(f"compound_{c.name.lower()}" for c in Compound),
    "tyre_sets_left",
    "damage",
    *(f"driver_{i}" for i in range(4)),
    "driver_time_frac",
    "stint_laps_frac",
    *(f"flag_{f.name.lower()}" for f in FlagState),
    "wetness",
    "rain_forecast",
    "pit_loss_laps",
)
"""Names of the encoded observation's columns, in order."""

OBS_DIM = len(FEATURES)
OBS_BOUND = 5.0
"""Every encoded feature lies in ``[-OBS_BOUND, OBS_BOUND]``."""


@dataclass(frozen=True)
class ObservationEncoder:
    """Turns an :class:`~engine.strategy.Observation` into a normalised feature row.

    Times are measured in the car's own laps, fuel in its nominal stints, positions as a
    fraction of its class, so one encoding serves any car and track.
    """

    race_s: float
    """Nominal race length [s] (duration, or laps x reference lap time)."""
    class_size: int
    """Cars in the controlled car's class."""
    field_size: int
    """Cars in the race."""
    stint_laps: float
    """Green laps a full tank (or energy allocation) lasts at nominal use."""
    driver_stint_s: float
    """Longest a driver may drive without a break [s]."""

    @classmethod
    def for_car(cls, scenario: Scenario, car: str) -> ObservationEncoder:
        entry = scenario.entries[scenario.entry_index(car)]
        if scenario.race.duration_s is not None:
            race_s = scenario.race.duration_s
        else:
            race_s = float(scenario.race.laps or 1) * entry.ref_lap_time_s
        use = max(entry.ref_fuel_per_lap, entry.ref_energy_per_lap)
        return cls(
            race_s=float(race_s),
            class_size=sum(e.car_class == entry.car_class for e in scenario.entries),
            field_size=len(scenario.entries),
            stint_laps=1.0 / use,
            driver_stint_s=scenario.rules.max_stint_driving_s,
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def encode(self, obs: Observation) -> torch.Tensor:
        """Features ``[n, OBS_DIM]`` (float32), clipped to ``[-OBS_BOUND, OBS_BOUND]``."""
        ref = obs.ref_lap_time_s.clamp(min=1.0)
        laps_left = obs.race_time_left_s / ref
        pit = obs.pit_loss_s.clamp(min=1.0)
        cols = [
            obs.race_time_left_s / self.race_s,
            (laps_left / self.stint_laps).clamp(0.0, 3.0),
            ((obs.fuel_laps_left - laps_left) / self.stint_laps).clamp(-2.0, 2.0),
            obs.lap * ref / self.race_s,
            (obs.class_position - 1.0) / max(self.class_size - 1, 1),
            (obs.overall_position - 1.0) / max(self.field_size - 1, 1),
            torch.tanh(obs.gap_ahead_s / pit),
            torch.tanh(obs.gap_behind_s / pit),
            torch.tanh(obs.gap_ahead_s / (5.0 * ref)),
            torch.tanh(obs.gap_behind_s / (5.0 * ref)),
            obs.fuel,
            obs.energy,
            obs.fuel_laps_left / self.stint_laps,
            *obs.tread.unbind(dim=1),
            obs.tread.amin(dim=1),
            obs.tyre_age_laps / (3.0 * self.stint_laps),
            *_one_hot(obs.compound, len(Compound)),
            obs.tyre_sets_left.clamp(0.0, 10.0) / 10.0,
            obs.damage,
            *_one_hot(obs.driver.clamp(max=3), 4),
            obs.driver_time_s / self.driver_stint_s,
            obs.stint_laps / self.stint_laps,
            *_one_hot(obs.flag, len(FlagState)),
            obs.wetness,
            obs.rain_forecast,
            obs.pit_loss_s / ref,
        ]
        x = torch.stack([c.float() for c in cols], dim=1)
        return torch.nan_to_num(x).clamp(-OBS_BOUND, OBS_BOUND)


def _one_hot(codes: torch.Tensor, n: int) -> list[torch.Tensor]:
    return list(torch.nn.functional.one_hot(codes.long().clamp(0, n - 1), n).float().unbind(1))


class Objective(StrEnum):
    """What a training reward asks the agent to optimise (see :class:`RewardSpec`)."""

    POSITION = "position"
    """The class position at the finish, shaped by its potential."""
    TIME = "time"
    """Race time of a single-car race over a fixed number of laps."""


OBJECTIVES = tuple(o.value for o in Objective)


@dataclass(frozen=True)
class RewardSpec:
    """What the agent is paid.

    ``position``: at the finish, ``-(class position - 1) / (class size - 1)`` (0 for a class
    win, -1 for last), plus potential-based shaping ``F = gamma * Phi(s') - Phi(s)`` with
    ``Phi(s) = -shaping * (class position at the line - 1) / (class size - 1)`` and
    ``Phi = 0`` at the finish (Ng, Harada & Russell 1999: the shaped and unshaped problems
    have the same optimal policies; over an episode the shaping sums to ``-Phi(s_0)`` when
    ``gamma = 1``, a constant of the start).

    ``time`` (single-car races over a fixed number of laps): ``-(race time of the step) /
    (10 x reference lap)`` per decision, so the return is minus the race time in units of ten
    laps; no shaping.
    """

    objective: Objective = Objective.POSITION
    """Its name is accepted and turned into the member."""
    shaping: float = 0.5
    """Weight of the class-position potential (0 switches shaping off)."""
    gamma: float = 0.999
    """The discount the shaping uses; must equal the learner's."""

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        object.__setattr__(self, "objective", Objective(self.objective))

    def potential(self, obs: Observation, class_size: int) -> np.ndarray:
        if self.objective != Objective.POSITION:
            return np.zeros(obs.size)
        pos = obs.class_position.double().numpy()
        return -self.shaping * (pos - 1.0) / max(class_size - 1, 1)

    def terminal(self, class_position: np.ndarray, class_size: int) -> np.ndarray:
        return -(class_position.astype(np.float64) - 1.0) / max(class_size - 1, 1)


@dataclass
class Decision:
    """Replicas waiting for a decision: ids ``[n]``, features ``[n, D]``, legal ``[n, A]``."""

    ids: np.ndarray
    obs: np.ndarray
    mask: np.ndarray
    raw: Observation


@dataclass
class Transitions:
    """Completed transitions, one row per replica that acted (and whose outcome is known)."""

    ids: np.ndarray
    obs: np.ndarray
    mask: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    terminated: np.ndarray
    obs_next: np.ndarray
    mask_next: np.ndarray
    illegal: np.ndarray
    """The agent's action was illegal and was replaced (see :func:`legalise`)."""

    @classmethod
    def empty(cls) -> Transitions:
        z = np.zeros(0)
        zo, zm = np.zeros((0, OBS_DIM), np.float32), np.zeros((0, N_ACTIONS), bool)
        return cls(
            z.astype(np.int64),
            zo,
            zm,
            z.astype(np.int64),
            z,
            z.astype(bool),
            zo,
            zm,
            z.astype(bool),
        )

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        if not parts:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})

    def __len__(self) -> int:
        return int(self.ids.shape[0])


_FALLBACK = action_index(PaceMode.NORMAL)


def legalise(actions: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(actions with every illegal one replaced, which were replaced). The replacement is
    "stay out at normal pace" where legal, else the lowest-index legal action."""
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    ok = (actions >= 0) & (actions < N_ACTIONS)
    legal = np.zeros_like(ok)
    legal[ok] = mask[np.nonzero(ok)[0], actions[ok]]
    fallback = np.where(mask[:, _FALLBACK], _FALLBACK, mask.argmax(axis=1))
    return np.where(legal, actions, fallback), ~legal


def controlled_car_setup(
    scenario: Scenario, car: str | None, reward: RewardSpec | None
) -> tuple[Scenario, str, RewardSpec, ObservationEncoder]:
    """(scenario, controlled car, reward, observation encoder) of an env over ``scenario``:
    the car defaults to the scenario's focus car; the reward to :class:`RewardSpec`'s."""
    car = car or scenario.focus_car
    if car is None:
        raise ValueError(f"scenario {scenario.name!r} has no focus_car; name the car")
    reward = reward or RewardSpec()
    if reward.objective == Objective.TIME and scenario.race.laps is None:
        raise ValueError("the 'time' objective needs a race over a fixed number of laps")
    return scenario, car, reward, ObservationEncoder.for_car(scenario, car)


class RaceVecEnv:
    """One controlled car in each of ``replicas`` races, stepped together.

    ``reset(seed)`` starts a generation of races on ``seed`` and returns the first
    :class:`Decision`; ``step(actions)`` answers the current decision and returns the
    transitions completed and the next decision (None once every race of the generation
    has finished). A replica's last transition comes back once its finishing class position
    is known.
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
        chunk: int = 0,
        first_replica: int = 0,
    ) -> None:
        self.scenario, self.car, self.reward, self.encoder = controlled_car_setup(
            scenario, car, reward
        )
        self.replicas = replicas
        self.lap_model = lap_model
        self.event_model = event_model
        self.chunk, self.first_replica = chunk, first_replica
        self._models: tuple[LapModel, EventModel | None] | None = None
        self._car_index = scenario.entry_index(self.car)
        self._time_scale = 10.0 * scenario.entries[self._car_index].ref_lap_time_s
        self.sim: RaceSim | None = None
        self._decision: Decision | None = None
        self._acted = np.zeros(replicas, dtype=bool)
        """The replica acted and its transition is not complete yet."""
        self.episodes_finished: list[float] = []
        """Finishing class positions (or race times for ``time``) of completed episodes."""

    # -- generation control -------------------------------------------------------------

    def reset(self, seed: int) -> Decision:
        if self._models is None:
            # The scenario's models, loaded once rather than by every generation's RaceSim.
            sc = self.scenario
            lap = self.lap_model if self.lap_model is not None else load_lap_model(sc)
            ev = self.event_model if self.event_model is not None else load_event_model(sc)
            self._models = (lap, ev)
        self.sim = RaceSim(
            self.scenario,
            StrategyAssignment(default=None, per_car={}),
            self.replicas,
            seed,
            controlled_car=self.car,
            lap_model=self._models[0],
            event_model=self._models[1],
            chunk=self.chunk,
            first_replica=self.first_replica,
        )
        r, d = self.replicas, OBS_DIM
        self._prev_obs = np.zeros((r, d), np.float32)
        self._prev_mask = np.zeros((r, N_ACTIONS), bool)
        self._prev_act = np.zeros(r, np.int64)
        self._prev_phi = np.zeros(r)
        self._prev_time = np.zeros(r)
        self._prev_illegal = np.zeros(r, bool)
        self._acted = np.zeros(r, dtype=bool)
        dp = self.sim.advance()
        if dp is None:
            raise RuntimeError("the race ended before the controlled car's first decision")
        self._decision = self._record(dp)
        return self._decision

    def _record(self, dp: DecisionPoint) -> Decision:
        ids = dp.replicas.numpy().astype(np.int64)
        x = self.encoder.encode(dp.obs).numpy()
        return Decision(ids=ids, obs=x, mask=dp.legal.numpy().astype(bool), raw=dp.obs)

    def step(self, actions: np.ndarray) -> tuple[Transitions, Decision | None]:
        """Answer the waiting replicas (``actions[i]`` for ``decision.ids[i]``) and run to the
        next decision. Returns the transitions completed by this call: those of replicas now
        back at the line, and, once every race is over, the last transition of every replica."""
        dec = self._decision
        if dec is None or self.sim is None:
            raise RuntimeError("step() before reset() or after the generation ended")
        acts, illegal = legalise(actions, dec.mask)
        ids = dec.ids
        self._prev_obs[ids] = dec.obs
        self._prev_mask[ids] = dec.mask
        self._prev_act[ids] = acts
        self._prev_illegal[ids] = illegal
        self._prev_phi[ids] = self.reward.potential(dec.raw, self.encoder.class_size)
        self._prev_time[ids] = dec.raw.race_time_s.double().numpy()
        self._acted[ids] = True
        self.sim.act(torch.as_tensor(ids), torch.as_tensor(acts))
        dp = self.sim.advance()
        if dp is None:
            self._decision = None
            return self._terminal(np.nonzero(self._acted)[0]), None
        nxt = self._record(dp)
        back = nxt.ids[self._acted[nxt.ids]]
        self._acted[nxt.ids] = False
        self._decision = nxt
        return self._continuing(nxt, back), nxt

    def _continuing(self, nxt: Decision, ids: np.ndarray) -> Transitions:
        rows = np.searchsorted(nxt.ids, ids, sorter=np.argsort(nxt.ids))
        rows = np.argsort(nxt.ids)[rows]
        raw = nxt.raw.index(torch.as_tensor(rows))
        if self.reward.objective == Objective.POSITION:
            phi = self.reward.potential(raw, self.encoder.class_size)
            rew = self.reward.gamma * phi - self._prev_phi[ids]
        else:
            dt = raw.race_time_s.double().numpy() - self._prev_time[ids]
            rew = -dt / self._time_scale
        return self._transitions(ids, rew, False, nxt.obs[rows], nxt.mask[rows])

    def _terminal(self, ids: np.ndarray) -> Transitions:
        assert self.sim is not None
        result = self.sim.result()
        c = self._car_index
        self._acted[ids] = False
        if self.reward.objective == Objective.POSITION:
            pos = np.asarray(result.class_position)[ids, c]
            rew = self.reward.terminal(pos, self.encoder.class_size) - self._prev_phi[ids]
            self.episodes_finished.extend(pos.astype(float).tolist())
        else:
            t = np.asarray(result.finish_time_s, dtype=np.float64)[ids, c]
            rew = -(t - self._prev_time[ids]) / self._time_scale
            self.episodes_finished.extend(t.tolist())
        return self._transitions(ids, rew, True, self._prev_obs[ids], self._prev_mask[ids])

    def _transitions(
        self,
        ids: np.ndarray,
        rew: np.ndarray,
        terminated: bool,
        obs_next: np.ndarray,
        mask_next: np.ndarray,
    ) -> Transitions:
        """The transitions from the replicas' previous decisions to what followed them."""
        return Transitions(
            ids=ids,
            obs=self._prev_obs[ids],
            mask=self._prev_mask[ids],
            act=self._prev_act[ids],
            rew=rew,
            terminated=np.full(ids.shape[0], terminated),
            obs_next=obs_next,
            mask_next=mask_next,
            illegal=self._prev_illegal[ids],
        )


def generation_seed(seed: int, generation: int) -> int:
    """Engine seed of training generation ``generation`` of a run seeded ``seed``: drawn in
    ``[2**30, 2**31)``, disjoint from the evaluation seeds (below ``2**30``)."""
    rng = np.random.default_rng([seed, generation, 0x7EA1])
    return int(rng.integers(2**30, 2**31))
