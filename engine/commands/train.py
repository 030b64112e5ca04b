"""Train a strategy agent on a scenario, then compare it with the baselines.

``python -m engine.train`` with no options trains the default agent (PPO) for the default
scenario's focus car, shows progress, writes TensorBoard logs and a checkpoint under
``runs/<scenario>-<algo>-seed<seed>``, tunes the fixed-plan baseline by grid search, and
evaluates the agent against the baselines on held-out races (common random numbers, paired
intervals), printing the comparison table.

Seeds: training races use engine seeds in ``[2**30, 2**31)`` (from ``--seed`` and the
generation counter), the baseline search seed ``2**29 + seed``, the evaluation seed
``seed``: the evaluation races are never trained or tuned on.

This command (``engine.commands.train``; ``python -m engine.train`` runs it) is the one place
that wires an agent to the engine; it loads the agent code (``policies``) by name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from data.entry import run_main
from engine.cli_types import (
    finite_float,
    non_negative_int,
    positive_int,
    random_seed,
)

DEFAULT_SCENARIO = "six_hours"
DEFAULT_BUDGET = "500000"
DEFAULT_STINT_BUDGET = "24000"
TUNE_SEED_OFFSET = 2**29


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """``"200000"`` -> (env steps, None); ``"6m"`` / ``"90s"`` / ``"1.5h"`` -> (None, seconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"budget {text!r}: expected env steps (e.g. 200000) or a time (90s, 6m, 1.5h)"
        )
    value, unit = float(m.group(1)), m.group(2)
    if not unit:
        return int(value), None
    return None, value * {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.train",
        description="Train a reinforcement-learning strategist for one car (Tianshou PPO, DQN "
        "or IQN acting on CVaR) on batched simulated races, write TensorBoard logs and a "
        "checkpoint, then compare it with the rule baselines and a tuned fixed plan on "
        "held-out races.",
    )
    p.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"scenario name or TOML path (default {DEFAULT_SCENARIO})",
    )
    p.add_argument("--car", default=None, help="race number to control (default: focus car)")
    p.add_argument(
        "--algo", choices=("ppo", "dqn", "iqn"), default="ppo", help="agent (default ppo)"
    )
    p.add_argument(
        "--cvar-alpha",
        type=finite_float,
        default=1.0,
        help="IQN only: act on the CVaR of the return at this level, e.g. 0.1 for the worst "
        "10 %% (default 1: risk-neutral mean); the comparison after training then reports the "
        "CVaR of class position at this level instead of 10 %%",
    )
    p.add_argument(
        "--decision",
        choices=("lap", "stint"),
        default="lap",
        help="where the agent decides: 'lap' (every line crossing, the 147-action table) or "
        "'stint' (at the race's first crossing and every stop: the next stint's pace and fuel "
        "reserve, engine.stint; a fuel-to-finish rule drives the laps between) (default lap)",
    )
    p.add_argument("--seed", type=random_seed, default=0, help="run seed (default 0)")
    p.add_argument(
        "--budget",
        type=parse_budget,
        default=None,
        help="training budget: decisions or time (90s, 6m) (default "
        f"{DEFAULT_BUDGET} decisions a lap, {DEFAULT_STINT_BUDGET} a stint)",
    )
    p.add_argument(
        "--replicas", type=positive_int, default=128, help="races simulated together (default 128)"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where the baseline search and evaluation races run (default local)",
    )
    p.add_argument(
        "--eval-replicas",
        type=non_negative_int,
        default=256,
        help="held-out races per strategy in the final comparison (0 skips it; default 256)",
    )
    p.add_argument(
        "--tune-replicas",
        type=positive_int,
        default=64,
        help="races per candidate in the fixed-plan grid search over stint length, tyre "
        "interval and pace (policies.tuned, ranked by mean class position; default 64)",
    )
    p.add_argument(
        "--baselines",
        default="fuel-reserve,double-stint,opportunistic",
        help="engine rule baselines to compare with, comma-separated",
    )
    _add_teacher_arguments(p)
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--env-workers",
        type=positive_int,
        default=1,
        help="processes the training races are split over (engine.sharded_env; each runs a "
        "chunk of --replicas with the chunk's own random streams, so a resumed run must use "
        "the same number; default 1)",
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _add_teacher_arguments(p: argparse.ArgumentParser) -> None:
    """The teacher options: who drives the first generations and how far DQN / IQN hold
    other actions below the teacher's."""
    p.add_argument(
        "--teacher-generations",
        type=non_negative_int,
        default=None,
        help="generations of races driven by the teacher (--teacher) before learning starts: PPO "
        "imitates them, DQN and IQN learn from them as demonstrations (policies.demonstrations). "
        "Default: 0 for PPO (learning from scratch does better: a cloned policy that samples a "
        "wrong call on a few percent of laps makes several bad calls a race), 2 for DQN and "
        "IQN (without demonstrations they drift toward the stops they never tried), 0 with "
        "--decision stint (whose few options need no teacher; a teacher there is refused)",
    )
    p.add_argument(
        "--teacher",
        default=None,
        metavar="SPEC",
        help="strategy that drives the teacher generations, as engine.evaluate --strategy reads "
        "it (e.g. a team's 'plan:FILE' or a trained 'policies.agents:load:path=...'; default: "
        "the tuned fixed plan)",
    )
    p.add_argument(
        "--demo-margin",
        type=finite_float,
        default=None,
        help="DQN / IQN: how far below the teacher's action every other action's score is held "
        "on the teacher's races, in reward units (one class position of 18 is 1/17; default: "
        "AgentConfig.demo_margin, 0.05)",
    )


class _Refused(Exception):
    """A setting the run cannot go on with; main prints it and exits with status 2."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.budget is None:
        stint = args.decision == "stint"
        args.budget = parse_budget(DEFAULT_STINT_BUDGET if stint else DEFAULT_BUDGET)
    import numpy as np
    import torch

    from engine.scenario import ScenarioError, load_scenario

    # The entry point owns the global generators Tianshou samples from.
    torch.manual_seed(args.seed)
    np.random.seed(args.seed % 2**32)
    torch.set_num_threads(args.threads)
    try:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            raise _Refused(str(exc)) from exc
        return _train_and_compare(args, scenario)
    except _Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _agent_config(args: argparse.Namespace) -> Any:
    """The agent's config from the options (``--teacher-generations`` defaulted by it)."""
    from engine.vec_env import OBS_DIM

    agents = importlib.import_module("policies.agents")
    try:
        config = agents.AgentConfig.for_decision(
            args.decision,
            algo=args.algo,
            obs_dim=OBS_DIM,
            cvar_alpha=args.cvar_alpha,
            **({} if args.demo_margin is None else {"demo_margin": args.demo_margin}),
        )
    except ValueError as exc:
        raise _Refused(str(exc)) from exc
    if args.teacher_generations is None:
        args.teacher_generations = 0 if config.on_policy or config.stint else 2
    if config.stint and args.teacher_generations > 0:
        raise _Refused("--decision stint learns without a teacher: leave out --teacher-generations")
    return config


def _custom_teacher(args: argparse.Namespace) -> Any:
    """The ``--teacher`` strategy, or None (none given, or no taught generations)."""
    if args.teacher is None or args.teacher_generations <= 0:
        return None
    from engine.baselines import make_strategy

    try:
        return make_strategy(args.teacher)
    except (ValueError, ImportError, AttributeError, FileNotFoundError) as exc:
        raise _Refused(f"--teacher {args.teacher!r}: {exc}") from exc


def _make_env(args: argparse.Namespace, scenario: Any, car: str, config: Any) -> Any:
    from engine.vec_env import RaceVecEnv, RewardSpec

    reward = RewardSpec(gamma=config.gamma)
    if args.env_workers > 1:
        from engine.sharded_env import ShardedRaceVecEnv

        env: Any = ShardedRaceVecEnv(
            scenario, args.replicas, shards=args.env_workers, car=car, reward=reward
        )
    else:
        env = RaceVecEnv(scenario, args.replicas, car=car, reward=reward)
    if config.stint:
        from engine.stint import StintVecEnv

        return StintVecEnv(scenario, args.replicas, reward=reward, lap_env=env)
    return env


def _resume(ckpt_path: Path, config: Any, car: str, seed: int) -> tuple[Any, Any, Any, Any]:
    """(algorithm, training state, replay buffer, demonstrations) of the checkpoint, its
    random generators restored."""
    ckpt_mod = importlib.import_module("policies.checkpoint")
    ck = ckpt_mod.load_checkpoint(ckpt_path)
    if ck.config != config or ck.car != car or ck.seed != seed:
        raise _Refused(f"{ckpt_path} was trained with other settings")
    demos = None
    if ck.demos is not None:
        demos = importlib.import_module("policies.demonstrations").Demonstrations.from_dict(
            ck.demos
        )
    if hasattr(ck.algorithm, "_iter"):
        ck.algorithm._iter = ck.target_iter
    ckpt_mod.restore_rng(ck.rng)
    return ck.algorithm, ck.state, ck.buffer, demos


def _tune(
    args: argparse.Namespace, scenario: Any, car: str, config: Any, backend: Any, needed: bool
) -> Any:
    """The tuned fixed plan (the evaluation's baseline and the default teacher), or None
    where neither needs it."""
    from engine.montecarlo import CVAR_ALPHA

    if not (args.eval_replicas > 0 or needed):
        return None
    tuned_mod = importlib.import_module("policies.tuned")
    # Ranked by the mean even for a CVaR agent: a tail ranking on a few dozen races per
    # plan is noise, and the risk-neutral and CVaR agents should share their teacher.
    tuned = tuned_mod.tune_fixed_plan(
        scenario,
        car,
        args.tune_replicas,
        TUNE_SEED_OFFSET + args.seed,
        cvar_alpha=config.cvar_alpha if config.cvar_alpha < 1 else CVAR_ALPHA,
        backend=backend,
        progress=not args.no_progress,
    )
    if not args.json:
        print(
            f"tuned fixed plan: {tuned.best.name} (best {tuned.objective} of "
            f"{len(tuned.table)} plans on {tuned.replicas} races)",
            file=sys.stderr,
        )
    return tuned


def _train_and_compare(args: argparse.Namespace, scenario: Any) -> int:
    from engine.backends import make_backend

    car = args.car or scenario.focus_car
    if car is None:
        raise _Refused(f"scenario {scenario.name!r} has no focus_car; pass --car")
    config = _agent_config(args)
    custom_teacher = _custom_teacher(args)
    name = (
        f"{scenario.name}-{config.algo}"
        + ("-stint" if config.stint else "")
        + (f"-cvar{config.cvar_alpha:g}" if config.cvar_alpha < 1 else "")
    )
    out: Path = args.out or Path("runs") / f"{name}-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "agent.pt"
    env = _make_env(args, scenario, car, config)
    algorithm = importlib.import_module("policies.agents").build_algorithm(config)
    state = buffer = demos = None
    if args.resume:
        algorithm, state, buffer, demos = _resume(ckpt_path, config, car, args.seed)
    backend = make_backend(args.backend)
    needed = args.teacher_generations > 0 and custom_teacher is None
    tuned = _tune(args, scenario, car, config, backend, needed)
    teacher = custom_teacher or (tuned.best if tuned is not None else None)
    started = time.perf_counter()
    state = _train(args, env, algorithm, config, name, out, state, buffer, demos, teacher)
    train_s = time.perf_counter() - started
    if args.env_workers > 1 or config.stint:
        env.close()
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "car": car,
        "algo": config.algo,
        "decision": config.decision,
        "cvar_alpha": config.cvar_alpha,
        "seed": args.seed,
        "env_steps": state.env_steps,
        "generations": state.generation,
        "train_s": train_s,
        "checkpoint": str(ckpt_path),
        "cores": os.cpu_count(),
    }
    if teacher is not None and args.teacher_generations > 0:
        summary["teacher"] = teacher.name
    if tuned is not None:
        summary["tuned_plan"] = tuned.best.name
        summary["tuning"] = tuned.to_dict()
    try:
        if args.eval_replicas > 0 and tuned is not None:
            summary.update(_compare(args, scenario, car, ckpt_path, tuned.best, backend))
    finally:
        backend.close()
    _write_json(out / "summary.json", summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _train(
    args: argparse.Namespace,
    env: Any,
    algorithm: Any,
    config: Any,
    name: str,
    out: Path,
    state: Any,
    buffer: Any,
    demos: Any,
    teacher: Any,
) -> Any:
    """Train within ``--budget`` with a progress bar and TensorBoard logs under ``out``;
    the final training state."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    training = importlib.import_module("policies.training")
    writer = SummaryWriter(str(out / "tb"))
    steps, seconds = args.budget
    budget = training.Budget(env_steps=steps, seconds=seconds)
    bar = tqdm(
        total=steps or seconds,
        unit="step" if steps else "s",
        desc=f"train {name}",
        disable=args.no_progress,
        file=sys.stderr,
    )

    def on_generation(st: Any, fig: dict[str, float]) -> None:
        for key, value in fig.items():
            writer.add_scalar(f"train/{key}", value, st.env_steps)
        bar.n = min(st.env_steps if steps else st.wall_s, bar.total)
        bar.set_postfix(pos=f"{fig['outcome_mean']:.2f}", gen=st.generation)
        bar.refresh()

    state, _ = training.train(
        env,
        algorithm,
        config,
        seed=args.seed,
        budget=budget,
        state=state,
        buffer=buffer,
        checkpoint_path=out / "agent.pt",
        scenario_label=args.scenario,
        on_generation=on_generation,
        teacher=teacher,
        teacher_generations=args.teacher_generations if teacher is not None else 0,
        demos=demos,
    )
    bar.close()
    writer.flush()
    writer.close()
    return state


def _compare(
    args: argparse.Namespace,
    scenario: Any,
    car: str,
    ckpt_path: Path,
    tuned: Any,
    backend: Any,
) -> dict[str, Any]:
    """Evaluate the agent, the tuned plan and the rule baselines on the held-out seed."""
    from engine import report
    from engine.baselines import make_strategy
    from engine.evaluate import evaluate
    from engine.montecarlo import CVAR_ALPHA

    agents = importlib.import_module("policies.agents")
    agent = agents.load(ckpt_path)
    strategies = [tuned, agent] + [
        make_strategy(s.strip()) for s in args.baselines.split(",") if s.strip()
    ]
    ev = evaluate(
        scenario,
        strategies,
        args.eval_replicas,
        args.seed,
        car=car,
        backend=backend,
        progress=not args.no_progress,
        # a CVaR agent is read at the level it acts on
        cvar_alpha=args.cvar_alpha if args.cvar_alpha < 1 else CVAR_ALPHA,
    )
    if not args.json:
        print(report.format_table(ev.comparison))
    diff = ev.comparison.differences[0].metrics["class_position"]
    return {
        "comparison": ev.comparison.to_dict(),
        "eval_seed": args.seed,
        "eval_replicas": args.eval_replicas,
        "agent_minus_tuned_class_position": diff.to_dict(),
        "agent_beats_tuned": bool(diff.high < 0),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


if __name__ == "__main__":
    run_main(main)
