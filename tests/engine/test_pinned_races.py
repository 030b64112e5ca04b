"""A few simulated races pinned bit for bit: a refactor of the engine must not change a lap.

Each case simulates a small race with fixed seeds, incidents and weather on, under strategies
defined here (not the rule baselines, which may change on their own), and compares sha256
digests of every output array (the lap records, classification, incidents and flag periods)
with the digests stored below.

Regenerate the digests with ``python tests/engine/test_pinned_races.py`` (it rewrites the
``PINNED`` block of this file) ONLY when a change is meant to change the races: a new rule, a
fixed bug, a new lap or event model, a new random stream. Say so in the commit message. A
refactor, a speed-up or a cleanup must leave them as they are.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.actions import Fuel, Tyres, action_index
from engine.race import RaceResult, RaceSim, StrategyAssignment, simulate
from engine.scenario import load_scenario, scenario_with
from engine.strategy import Observation
from events.interface import ForcedEvent, ForcedKind
from world_model.interface import Compound, PaceMode


def _legal_or_first(wanted: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """``wanted`` where legal, otherwise the first legal action of the row."""
    ok = legal.gather(1, wanted.unsqueeze(1)).squeeze(1)
    return torch.where(ok, wanted, legal.to(torch.int64).argmax(dim=1))


class FuelWatch:
    """Pits when under ``margin`` laps of fuel: full tank, fresh tyres (wets on a wet track),
    a driver change after ``stint_s`` of driving, repairs when damaged; pushes when a car is
    close behind."""

    def __init__(self, name: str, margin: float, stint_s: float, compound: Tyres) -> None:
        self.name = name
        self.margin = margin
        self.stint_s = stint_s
        self.compound = compound

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        n = obs.size
        out = torch.empty(n, dtype=torch.int64)
        push = obs.gap_behind_s < 1.5
        wrong_tyres = (obs.wetness > 0.4) & (obs.compound != int(Compound.WET))
        pit = (obs.fuel_laps_left < self.margin) | (obs.damage > 0.3) | wrong_tyres
        for i in range(n):
            pace = PaceMode.PUSH if bool(push[i]) else PaceMode.NORMAL
            tyres = Tyres.FOUR_WET if float(obs.wetness[i]) > 0.4 else self.compound
            if float(obs.tread[i].min()) > 0.6 and not bool(wrong_tyres[i]):
                tyres = Tyres.KEEP
            out[i] = action_index(
                pace,
                bool(pit[i]),
                Fuel.FULL,
                tyres,
                driver_change=float(obs.driver_time_s[i]) > self.stint_s,
                repair=float(obs.damage[i]) > 0.0,
            )
        return _legal_or_first(out, legal)


class Gambler:
    """Stays out in a random pace mode; now and then (probability ``p`` a lap) stops for a
    splash to the finish on two tyres; draws from the strategy stream."""

    name = "gambler"

    def __init__(self, p: float) -> None:
        self.p = p

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        n = obs.size
        pace = torch.randint(0, len(PaceMode), (n,), generator=generator)
        stop = (torch.rand(n, generator=generator) < self.p) | (obs.fuel_laps_left < 1.2)
        out = torch.tensor(
            [
                action_index(PaceMode(int(m)), bool(s), Fuel.TO_FINISH, Tyres.TWO_SAME)
                for m, s in zip(pace.tolist(), stop.tolist(), strict=True)
            ],
            dtype=torch.int64,
        )
        return _legal_or_first(out, legal)


def _mixed_field() -> StrategyAssignment:
    return StrategyAssignment(
        default=FuelWatch("watch", 1.3, 700.0, Tyres.FOUR_MEDIUM),
        per_car={"1": Gambler(0.08), "2": FuelWatch("soft", 2.0, 500.0, Tyres.FOUR_SOFT)},
    )


def _test_race_mixed() -> RaceResult:
    s = scenario_with(load_scenario("test_race"), **{"race.duration_h": 1.0})
    return simulate(s, _mixed_field(), 8, 11, record_laps=True, chunk_replicas=6)


def _test_race_forced_laps() -> RaceResult:
    """A lap race with scripted flags, rain and car events (one strategy for every car)."""
    s = scenario_with(load_scenario("test_race"), **{"race.duration_h": None, "race.laps": 16})
    forced = [
        ForcedEvent(ForcedKind.SAFETY_CAR, start_s=400.0),
        ForcedEvent(ForcedKind.FCY, start_s=1000.0, end_s=1090.0),
        ForcedEvent(ForcedKind.RAIN, start_s=600.0, end_s=1300.0, intensity=0.8),
        ForcedEvent(ForcedKind.PUNCTURE, car="1", lap=4),
        ForcedEvent(ForcedKind.DAMAGE, car=s.entries[-1].number, start_s=300.0, intensity=0.5),
        ForcedEvent(ForcedKind.FAILURE, car=s.entries[1].number, lap=12),
    ]
    strategy = FuelWatch("watch", 1.5, 600.0, Tyres.FOUR_HARD)
    return simulate(s, strategy, 3, 5, forced=forced, record_laps=True)


def _six_hours_slice() -> RaceResult:
    s = scenario_with(load_scenario("six_hours"), **{"race.duration_h": 0.75})
    return simulate(s, FuelWatch("watch", 1.2, 2400.0, Tyres.FOUR_MEDIUM), 4, 3, record_laps=True)


def _controlled_and_resumed() -> RaceResult:
    """Car 1 driven from outside (the env's path), then a race resumed from its snapshot."""
    s = load_scenario("test_race")
    sim = RaceSim(s, _mixed_field(), 3, 21, controlled_car="1", record_laps=True)
    outside = FuelWatch("outside", 1.6, 650.0, Tyres.FOUR_SOFT)
    snap = None
    gen = torch.Generator().manual_seed(0)
    while (point := sim.advance()) is not None:
        sim.act(point.replicas, outside.decide(point.obs, point.legal, gen))
        if snap is None and sim.race_time_s > 700.0:
            snap = sim.snapshot(1)
    assert snap is not None
    first = sim.result()
    resumed = simulate(s, _mixed_field(), 2, 8, start=snap, record_laps=True)
    return _joined(first, resumed)


def _joined(a: RaceResult, b: RaceResult) -> RaceResult:
    assert a.laps is not None and b.laps is not None
    laps = {k: np.concatenate([a.laps[k], b.laps[k]]) for k in a.laps}
    return RaceResult(
        **{
            **a.__dict__,
            "finish_time_s": np.concatenate([a.finish_time_s, b.finish_time_s]),
            "laps": laps,
            "incidents": {k: np.concatenate([a.incidents[k], b.incidents[k]]) for k in a.incidents},
        }
    )


CASES: dict[str, Callable[[], RaceResult]] = {
    "test_race_mixed": _test_race_mixed,
    "test_race_forced_laps": _test_race_forced_laps,
    "six_hours_0_75h": _six_hours_slice,
    "controlled_and_resumed": _controlled_and_resumed,
}


def _digest(x: np.ndarray) -> str:
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes() if x.dtype.kind != "U" else "\x1f".join(x.tolist()).encode())
    return h.hexdigest()[:20]


def digests(r: RaceResult) -> dict[str, str]:
    """sha256 (first 20 hex digits) of every output array of a result, by name."""
    assert r.laps is not None
    arrays = {
        "finish_position": r.finish_position,
        "class_position": r.class_position,
        "laps_completed": r.laps_completed,
        "finish_time_s": r.finish_time_s,
        "pit_stops": r.pit_stops,
        "pit_time_s": r.pit_time_s,
        "retired": r.retired,
        **{f"flags.{k}": v for k, v in r.flag_periods.items()},
        **{f"incidents.{k}": v for k, v in r.incidents.items()},
        **{f"laps.{k}": v for k, v in r.laps.items()},
    }
    return {k: _digest(np.asarray(v)) for k, v in sorted(arrays.items())}


# fmt: off
# PINNED: generated by `python tests/engine/test_pinned_races.py`
PINNED: dict[str, dict[str, str]] = {
    'controlled_and_resumed': {
        'class_position': '67a8c65814dba36c6f3c',
        'finish_position': '643315d2f5ee2c6ad2b4',
        'finish_time_s': '49ed4dc394bde17e14d9',
        'flags.end_s': '64578373a8a80ad1966c',
        'flags.kind': '55ae42cc1e37a5eb9f16',
        'flags.replica': '55ae42cc1e37a5eb9f16',
        'flags.start_s': '64578373a8a80ad1966c',
        'incidents.car': '55ae42cc1e37a5eb9f16',
        'incidents.damage': 'e22d2bf56879d224d16d',
        'incidents.kind': 'ffb9d6ff39e2e44c6d22',
        'incidents.other_car': '55ae42cc1e37a5eb9f16',
        'incidents.race_time_s': '64578373a8a80ad1966c',
        'incidents.replica': '55ae42cc1e37a5eb9f16',
        'laps.car': 'b27369ad3bf40245254f',
        'laps.class_position': '4acfe3444b5874ee4140',
        'laps.compound': '7bcd9173ae54d0b3dd83',
        'laps.damage': '7452a13fa6b565b67fda',
        'laps.driver': '0355281c369b630974bc',
        'laps.driver_change': '90187a4ec6fcefac4f6d',
        'laps.energy_end': '42fb7d46ed199b219b68',
        'laps.energy_start': '5b7273b92cbb92a85803',
        'laps.flag': '8d591a06fde311e52e3a',
        'laps.fuel_end': '0d97a58b1b6e27924a6b',
        'laps.fuel_start': '7279de3145ce0195df84',
        'laps.lap': 'e4b63d9f074b6d775ce0',
        'laps.lap_time_s': 'f649ddab3ed6c71c0367',
        'laps.pace_mode': '7a495e284850493ba417',
        'laps.pit_in': '77c1cedc48437646be2b',
        'laps.pit_out': 'fee7b83da79aa71a5fdd',
        'laps.pit_time_s': 'fbdd4fa3af0789ca4b05',
        'laps.position': '3035db4b4bebabe39824',
        'laps.race_time_s': '9ddedb9041b261775dd3',
        'laps.rain': '7452a13fa6b565b67fda',
        'laps.replica': '62118d1bcaf71f21cbd9',
        'laps.track_temp_c': '251db664949c4bfef1c5',
        'laps.tread_fl': '9b79c2d5007162f155b7',
        'laps.tread_fr': '6f5eefa70f3ffda85809',
        'laps.tread_rl': 'b533482e31b664e412ea',
        'laps.tread_rr': '9c85b4ca498ab26b715d',
        'laps.tyre_age_laps': 'a78dd70eedbda1e91380',
        'laps.tyre_temp_c': '7b5b8c4d056f0e3c20a8',
        'laps.wetness': '7452a13fa6b565b67fda',
        'laps_completed': 'a9acf422bfa1f43b7f8f',
        'pit_stops': 'b22b95d874a2e40b6c2c',
        'pit_time_s': '68e7eac8ebff2d8e70ea',
        'retired': '067b1569ae3d844e31c0',
    },
    'six_hours_0_75h': {
        'class_position': '7b6f443bc4dfd093213e',
        'finish_position': '37c1c8657d05712a23dc',
        'finish_time_s': 'dcc1eb2ac427823b4119',
        'flags.end_s': 'c4389e57db367236b572',
        'flags.kind': '1cbcc7fa0c9f06bf5714',
        'flags.replica': 'a73a971e670768160aee',
        'flags.start_s': '302dd88660a281768e2a',
        'incidents.car': '5c0d033221a9b0fa9003',
        'incidents.damage': '9d10c8b9750010e44dea',
        'incidents.kind': '97503ce367b7e28fa874',
        'incidents.other_car': 'b239cf1643c2b5842059',
        'incidents.race_time_s': 'b9e9f6ecc56b3fa50ebb',
        'incidents.replica': '5b37bfe88dd0b9068abe',
        'laps.car': '3d8ac011fe67ca2bdf9d',
        'laps.class_position': '8c337f6c5cb89384eb26',
        'laps.compound': '6a55676fd3a3b683a794',
        'laps.damage': 'a9be71deca037176bcfd',
        'laps.driver': '872c894c7cbc8fc26d1c',
        'laps.driver_change': '5d3687225dd79a497b26',
        'laps.energy_end': '2e9bfecc9591349376b7',
        'laps.energy_start': 'b1fb407575ab9fffe28e',
        'laps.flag': '6d4fddbfa9caf032efc5',
        'laps.fuel_end': 'c9fe4cdc2ecc25f07a63',
        'laps.fuel_start': 'f10be1b12af4af564825',
        'laps.lap': 'ee88c98f618186c406f3',
        'laps.lap_time_s': '468bb2ccbf7c9152d43d',
        'laps.pace_mode': '2a66a8de93214771a240',
        'laps.pit_in': '603f7d384bb0d5d5290d',
        'laps.pit_out': '75c7df68550d0c8874d5',
        'laps.pit_time_s': 'db6876ec3bfbb0e5723e',
        'laps.position': 'd895b5a454a97112698c',
        'laps.race_time_s': '3b87c3d24378c1be51f3',
        'laps.rain': 'e8c0c26e2f4128048efe',
        'laps.replica': 'adcaf78908cdede3d049',
        'laps.track_temp_c': '56d4456af380254ee148',
        'laps.tread_fl': '37222a8aa617d3a0d238',
        'laps.tread_fr': '736b1445f44f19c09f9d',
        'laps.tread_rl': '5bb346e3d16916bd009b',
        'laps.tread_rr': '96fed0cb559b9b417ca9',
        'laps.tyre_age_laps': 'a1e2b8011dd921aa06b1',
        'laps.tyre_temp_c': 'cce34961559416551d72',
        'laps.wetness': 'e8c0c26e2f4128048efe',
        'laps_completed': '946509415fe6761223a5',
        'pit_stops': '92c36a19c806639114ca',
        'pit_time_s': '15306bbe9bcb52abf604',
        'retired': '967102b8cdb4679f0273',
    },
    'test_race_forced_laps': {
        'class_position': 'fe08a6c256e2c8cffd1e',
        'finish_position': 'd03631c21ea9d3bcb6e0',
        'finish_time_s': 'f17f843702dc522360c5',
        'flags.end_s': '645d14f9cd7e3c7708c9',
        'flags.kind': '8ed1e549b0d8abc80ec7',
        'flags.replica': 'c3e6aaedff0e5798b785',
        'flags.start_s': '1e97496de174b2d477d3',
        'incidents.car': '1515755a717191042a2f',
        'incidents.damage': '8102332608c580ad4351',
        'incidents.kind': '48343dc09082d6264e1e',
        'incidents.other_car': '02bebeffee8c0089b383',
        'incidents.race_time_s': '56d0752311468da7ba78',
        'incidents.replica': '9b0be052c46e4a2a7be1',
        'laps.car': '068200d204ac21de7bf6',
        'laps.class_position': 'a28a21207213fb14ce65',
        'laps.compound': '4cad666c2da0da980985',
        'laps.damage': 'a9af5a6bf0b4658b8ed3',
        'laps.driver': 'b590ba06875218672ff6',
        'laps.driver_change': '994e47494a4cd8a7f51a',
        'laps.energy_end': '48eae8e5b1011cd99eb3',
        'laps.energy_start': 'e23de782b6dee47cb2f4',
        'laps.flag': '5522b730e411e835f978',
        'laps.fuel_end': 'ea64f76344670ffdc69e',
        'laps.fuel_start': '6bf69c29d56d8dd91bfb',
        'laps.lap': '189f4266616b18e65dac',
        'laps.lap_time_s': 'fcf15cbae96584117ccd',
        'laps.pace_mode': '0a7e71acb37c265e4015',
        'laps.pit_in': 'e05f03b1a8541e1581af',
        'laps.pit_out': '6370467a3465ef49e438',
        'laps.pit_time_s': '4bfdfe3c6817cdc5c724',
        'laps.position': '24b121c277f76abb683d',
        'laps.race_time_s': '2bb30caeca9c3acaf742',
        'laps.rain': '82a174f07534f70b8a3d',
        'laps.replica': '6d4fb436a6362aae9c9a',
        'laps.track_temp_c': 'e5246187013b82d27114',
        'laps.tread_fl': 'c9954ee8f40c47252dbf',
        'laps.tread_fr': 'c297bcfdfd623d7f069c',
        'laps.tread_rl': '496f2ff513985ece34ca',
        'laps.tread_rr': '249a8a4f0a1dc37b5fce',
        'laps.tyre_age_laps': '4bf2b7fc523210e8e402',
        'laps.tyre_temp_c': 'ef6a928c6ae8a928d516',
        'laps.wetness': '583caf61afb15012fc09',
        'laps_completed': '46cb0274548586cd7c8a',
        'pit_stops': '3d7dabfefca6a8e58b95',
        'pit_time_s': 'e478cef379e7ddb2c297',
        'retired': 'f48fa9f328371f4c6d0e',
    },
    'test_race_mixed': {
        'class_position': '71c3cc3d4db8ec901f7b',
        'finish_position': '891dafea01729f35fb5c',
        'finish_time_s': '604a0404f6b4e2e42f62',
        'flags.end_s': '64578373a8a80ad1966c',
        'flags.kind': '55ae42cc1e37a5eb9f16',
        'flags.replica': '55ae42cc1e37a5eb9f16',
        'flags.start_s': '64578373a8a80ad1966c',
        'incidents.car': 'ced9bbd5d152a7c2e6fb',
        'incidents.damage': '91680eff3783a450046b',
        'incidents.kind': '3d36be21f84f9877c535',
        'incidents.other_car': '6e5fe855a431ec85b8cf',
        'incidents.race_time_s': '2ba974e9ec547e93eb76',
        'incidents.replica': '1fd61d4463a91c76d7b4',
        'laps.car': '7bc92375e5ce58348042',
        'laps.class_position': '6971fbd4b9dfa2305820',
        'laps.compound': '0841e289fb9759fcf868',
        'laps.damage': 'c2365b3bfc06d8a8f3d9',
        'laps.driver': '365ea742a432e12da086',
        'laps.driver_change': '100bdca878d9cea35fd5',
        'laps.energy_end': '0f879bdf325f986fa957',
        'laps.energy_start': '2ab6bff8ef6f24424ebc',
        'laps.flag': '84ec035c43fd152ecf66',
        'laps.fuel_end': 'dae7fc3a768bf1502f36',
        'laps.fuel_start': 'c4266181d9579e163606',
        'laps.lap': 'a2c9b819e82bd7225c3d',
        'laps.lap_time_s': '443c9d84be413a7ee193',
        'laps.pace_mode': 'fca15523721d7225bb22',
        'laps.pit_in': '422cf099ade1bcad67db',
        'laps.pit_out': '0220b7995815e0e09974',
        'laps.pit_time_s': '42a17f261a8751afe827',
        'laps.position': 'a9f9df34acfdf981dcc0',
        'laps.race_time_s': '211617bf912fb3eea303',
        'laps.rain': '6b9bf0e5229ad925a84f',
        'laps.replica': '654f358bd329877d1573',
        'laps.track_temp_c': '8c17dff1160ed110a927',
        'laps.tread_fl': 'e1e93f9a6094b55a072c',
        'laps.tread_fr': '17c051aecda4127ca38f',
        'laps.tread_rl': 'd7748e3e24615d6c36b8',
        'laps.tread_rr': 'a8c6a8d03670c19b35dd',
        'laps.tyre_age_laps': '1129cda9fde78937c59f',
        'laps.tyre_temp_c': 'f2128be7c5b78614a5fc',
        'laps.wetness': '6b9bf0e5229ad925a84f',
        'laps_completed': '342c6f66c425a89d7337',
        'pit_stops': 'fc82fc88f1feabfe9d0f',
        'pit_time_s': 'b61af19ebef87404d68f',
        'retired': '235ff7eae380ef35a64a',
    },
}
# END PINNED
# fmt: on


@pytest.mark.parametrize("case", sorted(CASES))
def test_race_is_pinned(case: str) -> None:
    result = CASES[case]()
    assert result.laps is not None and len(result.laps["lap"]) > 100  # a real race, not a stub
    got = digests(result)
    want = PINNED[case]
    changed = sorted(k for k in want if got.get(k) != want[k])
    assert set(got) == set(want), "the result's arrays changed names"
    assert not changed, f"{case}: arrays changed bit for bit: {changed}"


def _regenerate() -> None:
    path = Path(__file__)
    lines = ["PINNED: dict[str, dict[str, str]] = {"]
    for case in sorted(CASES):
        lines.append(f"    {case!r}: {{")
        lines += [f"        {k!r}: {v!r}," for k, v in digests(CASES[case]()).items()]
        lines.append("    },")
    lines.append("}")
    text = path.read_text()
    block = re.compile(r"(# PINNED: [^\n]*\n).*?(\n# END PINNED)", re.DOTALL)
    new = block.sub(lambda m: m.group(1) + "\n".join(lines) + m.group(2), text)
    path.write_text(new)
    print(f"rewrote the digests of {len(CASES)} races in {path}", file=sys.stderr)


if __name__ == "__main__":
    _regenerate()
