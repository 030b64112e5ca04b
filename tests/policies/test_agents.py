"""Agents: networks respect the legal mask, IQN acts on CVaR fractions, exploration follows
its prior, checkpoints round-trip and agents load as engine strategies by spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tianshou.data import Batch

from engine.actions import ACTIONS, N_ACTIONS
from engine.baselines import make_strategy
from engine.scenario import load_scenario
from engine.strategy import check_decisions
from engine.vec_env import OBS_DIM, ObservationEncoder, RaceVecEnv, RewardSpec
from policies.agents import (
    AgentConfig,
    AgentStrategy,
    build_algorithm,
    greedy_actions,
    greedy_scores,
)
from policies.checkpoint import (
    Checkpoint,
    TrainState,
    capture_rng,
    load_checkpoint,
    save_checkpoint,
)
from policies.networks import PIT_PRIOR, explore, pit_flags


@pytest.fixture(scope="module")
def decision():
    env = RaceVecEnv(load_scenario("test_race"), 16)
    return env, env.reset(4)


def test_config_rejects_cvar_without_distributional_agent() -> None:
    with pytest.raises(ValueError, match="iqn"):
        AgentConfig(algo="ppo", obs_dim=OBS_DIM, cvar_alpha=0.1)
    with pytest.raises(ValueError):
        AgentConfig(algo="a3c", obs_dim=OBS_DIM)


@pytest.mark.parametrize("algo", ["ppo", "dqn", "iqn"])
def test_agents_choose_legal_actions(algo: str, decision) -> None:
    env, dec = decision
    torch.manual_seed(0)
    config = AgentConfig(algo=algo, obs_dim=OBS_DIM, cvar_alpha=0.25 if algo == "iqn" else 1.0)
    strategy = AgentStrategy(build_algorithm(config), config, env.encoder)
    legal = torch.as_tensor(dec.mask)
    # Only one legal action per row: the agent must find it whatever its scores.
    only = torch.zeros_like(legal)
    pick = torch.as_tensor([int(np.nonzero(m)[0][-1]) for m in dec.mask])
    only[torch.arange(len(pick)), pick] = True
    acts = strategy.decide(dec.raw, only, torch.Generator())
    assert torch.equal(acts, pick)
    acts = strategy.decide(dec.raw, legal, torch.Generator())
    check_decisions(acts, legal, strategy.name)


def test_a_ppo_agent_draws_from_its_policy_and_a_q_agent_takes_its_best(decision) -> None:
    """PPO acts as it was trained, by sampling (reproducibly, from the strategy's generator);
    DQN takes its best action whatever the generator."""
    env, dec = decision
    legal = torch.as_tensor(dec.mask)
    for algo in ("ppo", "dqn"):
        torch.manual_seed(0)
        config = AgentConfig(algo=algo, obs_dim=OBS_DIM)
        strategy = AgentStrategy(build_algorithm(config), config, env.encoder)
        runs = [
            torch.stack(
                [strategy.decide(dec.raw, legal, g) for _ in range(40)]
            )  # 40 decisions of every row on one generator
            for g in (torch.Generator().manual_seed(1), torch.Generator().manual_seed(1))
        ]
        assert torch.equal(runs[0], runs[1]), "a seed reproduces the decisions"
        greedy = greedy_actions(
            greedy_scores(strategy.algorithm, config, env.encoder.encode(dec.raw)), legal
        )
        if algo == "ppo":
            assert strategy.samples and bool((runs[0] != greedy).any()), "PPO samples"
            assert bool(legal.gather(1, runs[0].T).all()), "only legal actions"
        else:
            assert not strategy.samples and bool((runs[0] == greedy).all())


def test_untrained_actor_follows_the_stopping_prior(decision) -> None:
    _, dec = decision
    torch.manual_seed(1)
    config = AgentConfig(algo="ppo", obs_dim=OBS_DIM)
    actor = build_algorithm(config).policy.actor
    logits, _ = actor(Batch(obs=dec.obs, mask=np.ones_like(dec.mask)))
    p_pit = torch.softmax(logits, dim=1)[:, pit_flags()].sum(dim=1)
    assert torch.all((p_pit - PIT_PRIOR).abs() < 0.05)


def test_exploration_draws_legal_actions_at_the_prior_rate() -> None:
    np.random.seed(3)  # test-local: explore() uses the global generator, as Tianshou does
    n = 20_000
    mask = np.ones((n, N_ACTIONS), bool)
    mask[: n // 2, 0] = False
    acts = explore(mask)
    assert mask[np.arange(n), acts].all()
    pit = pit_flags().numpy()[acts].mean()
    # Rows without action 0 (one of the three stay-out actions) renormalise the prior.
    masked = PIT_PRIOR / (PIT_PRIOR + (1 - PIT_PRIOR) * 2 / 3)
    expected = (PIT_PRIOR + masked) / 2
    sd = np.sqrt(expected * (1 - expected) / n)
    assert abs(pit - expected) < 5 * sd


@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_fitting_stays_to_a_poor_return_does_not_make_untried_stops_greedy(
    algo: str, decision
) -> None:
    """Early in a long race a Q agent has tried only staying out (stops come when the tank
    forces them) and is paid about the return of a poor race. Fitting those values must not
    lift the untried stops above staying out: with a small prior gap and a zero initial
    value they overtook it, and the agent then stopped on nearly every lap."""
    _, dec = decision
    torch.manual_seed(6)
    config = AgentConfig(algo=algo, obs_dim=OBS_DIM)
    model = build_algorithm(config).policy.model
    x = torch.as_tensor(dec.obs)
    legal = torch.as_tensor(dec.mask)
    pit = pit_flags()
    stay = torch.nonzero(~pit).flatten()
    assert bool(legal[:, stay].all())  # the first decision: staying out is legal everywhere
    taken = stay[torch.arange(x.shape[0]) % len(stay)]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    rows = torch.arange(x.shape[0])
    for _ in range(300):
        if algo == "dqn":
            q = model(x)[0]
        else:
            (quantiles, _), _ = model(x, sample_size=config.num_quantiles)
            q = quantiles.mean(dim=2)
        loss = (q[rows, taken] + 0.9).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.01  # the fit itself converged
    with torch.no_grad():
        if algo == "dqn":
            q = model(x)[0]
        else:
            taus = ((torch.arange(64) + 0.5) / 64).expand(x.shape[0], 64)
            q = model(x, taus=taus)[0][0].mean(dim=2)
    best_stay = q[:, ~pit].max(dim=1).values
    best_stop = q.masked_fill(~legal, -1e9)[:, pit].max(dim=1).values
    assert bool((best_stay > best_stop).all())


def test_iqn_acts_on_fractions_below_alpha_and_learns_on_uniform_ones(decision) -> None:
    _, dec = decision
    torch.manual_seed(2)
    alpha = 0.2
    config = AgentConfig(algo="iqn", obs_dim=OBS_DIM, cvar_alpha=alpha)
    algo = build_algorithm(config)
    model = algo.policy.model
    seen: list[torch.Tensor] = []
    original = model.quantiles

    def recording(x: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        seen.append(taus.detach().clone())
        return original(x, taus)

    model.quantiles = recording  # type: ignore[method-assign]
    out = algo.policy(Batch(obs=Batch(obs=dec.obs, mask=dec.mask), info=Batch()))
    assert len(seen) == 2
    loss_taus, act_taus = seen
    assert torch.equal(out.taus, loss_taus)
    assert float(act_taus.max()) <= alpha
    assert float(loss_taus.max()) > alpha  # uniform on (0, 1): some above alpha
    # The acting fractions are a fixed quadrature (no sampling noise in the choice).
    n = act_taus.shape[1]
    assert torch.allclose(act_taus[0], alpha * (torch.arange(n) + 0.5) / n)
    again = algo.policy(Batch(obs=Batch(obs=dec.obs, mask=dec.mask), info=Batch()))
    assert np.array_equal(again.act, out.act)
    # The chosen action maximises the mean of the quantiles at the acting fractions.
    q = original(torch.as_tensor(dec.obs), act_taus).mean(dim=2)
    q = q.masked_fill(~torch.as_tensor(dec.mask), -1e9)
    assert np.array_equal(out.act, q.argmax(dim=1).numpy())


def test_greedy_cvar_scores_use_the_lower_tail(decision) -> None:
    _, dec = decision
    torch.manual_seed(5)
    x = torch.as_tensor(dec.obs)
    config = AgentConfig(algo="iqn", obs_dim=OBS_DIM, cvar_alpha=0.1)
    algo = build_algorithm(config)
    low = greedy_scores(algo, config, x)
    full = greedy_scores(algo, AgentConfig(algo="iqn", obs_dim=OBS_DIM), x)
    n = config.num_quantiles
    taus = ((torch.arange(n) + 0.5) / n * 0.1).expand(x.shape[0], n)
    (q, _), _ = algo.policy.model(x, taus=taus)
    assert torch.allclose(low, q.mean(dim=2))
    assert not torch.allclose(low, full)


@pytest.mark.parametrize(("algo_name", "alpha"), [("iqn", 1.0), ("iqn", 0.1), ("dqn", 1.0)])
def test_the_evaluated_agent_acts_as_the_trained_policy_did(algo_name: str, alpha: float) -> None:
    # The scores the evaluator's strategy ranks actions by must give the action the training
    # loop's greedy policy picks: scoring on other fractions would evaluate another agent.
    torch.manual_seed(7)
    config = AgentConfig(algo=algo_name, obs_dim=OBS_DIM, cvar_alpha=alpha)
    algo = build_algorithm(config)
    model = algo.policy.model
    with torch.no_grad():  # scores that vary with the state and fraction, as trained ones do
        for p in model.parameters():
            p.normal_(0.0, 0.5)
        model.scorer.bias.zero_()
    model.scorer.scale = 1.0
    algo.eval()
    x = torch.randn(200, OBS_DIM)
    legal = torch.rand(200, N_ACTIONS) < 0.5
    legal[:, 0] = True
    batch = Batch(obs=Batch(obs=x.numpy(), mask=legal.numpy()), info=Batch())
    trained = np.asarray(algo.policy(batch).act)
    evaluated = greedy_actions(greedy_scores(algo, config, x), legal).numpy()
    assert np.array_equal(trained, evaluated)


def test_checkpoint_round_trip_and_spec_loading(tmp_path: Path, decision) -> None:
    env, dec = decision
    torch.manual_seed(6)
    config = AgentConfig(algo="ppo", obs_dim=OBS_DIM)
    algo = build_algorithm(config)
    path = tmp_path / "agent.pt"
    save_checkpoint(
        path,
        Checkpoint(
            algorithm=algo,
            config=config,
            encoder=env.encoder,
            reward=RewardSpec(),
            scenario="test_race",
            car="1",
            seed=0,
            state=TrainState(env_steps=12, generation=1),
            rng=capture_rng(),
        ),
    )
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pt"]  # no temp file left
    ck = load_checkpoint(path)
    assert ck.state.env_steps == 12 and ck.config == config
    assert isinstance(ck.encoder, ObservationEncoder) and ck.encoder == env.encoder
    x = torch.as_tensor(dec.obs)
    assert torch.equal(greedy_scores(algo, config, x), greedy_scores(ck.algorithm, config, x))
    strategy = make_strategy(f"policies.agents:load:path={path}")
    acts = strategy.decide(dec.raw, torch.as_tensor(dec.mask), torch.Generator())
    assert all(0 <= int(a) < len(ACTIONS) for a in acts)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "agent.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"agent\.pt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
