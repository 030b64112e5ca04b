from __future__ import annotations

import pytest
import torch

import world_model
from world_model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from world_model.ensemble import pack, route_by_member, unpack
from world_model.features import N_FEATURES
from world_model.interface import LapModel, PaceMode
from world_model.learned import LearnedLapModel, Standardiser
from world_model.networks import build_network
from world_model.parametric import ParametricLapModel
from world_model.targets import N_TARGETS

from .conftest import make_conditions


def _model(arch: str, seed: int = 0) -> LearnedLapModel:
    net = build_network(arch, N_FEATURES, 3, 16, 2, torch.Generator().manual_seed(seed))
    unit = lambda n: Standardiser(torch.zeros(n), torch.ones(n))  # noqa: E731
    return LearnedLapModel(net, unit(N_FEATURES), unit(N_TARGETS))


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_sample_shapes_and_ranges(arch, conditions):
    model = _model(arch)
    assert isinstance(model, LapModel)
    out = model.sample(conditions, torch.Generator().manual_seed(0))
    n = conditions.batch_size
    assert out.lap_time_s.shape == out.fuel_used.shape == out.tyre_temp_c.shape == (n,)
    assert out.wear.shape == (n, 4)
    assert (out.lap_time_s >= 0.9 * conditions.ref_lap_time_s).all()
    assert (out.fuel_used >= 0).all() and (out.wear >= 0).all() and (out.energy_used >= 0).all()
    assert all(t.dtype == torch.float32 for t in (out.lap_time_s, out.wear, out.fuel_used))


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_same_seed_same_samples_other_seed_other_samples(arch, conditions):
    model = _model(arch)
    member = torch.arange(conditions.batch_size)
    a = model.sample(conditions, torch.Generator().manual_seed(5), member)
    b = model.sample(conditions, torch.Generator().manual_seed(5), member)
    c = model.sample(conditions, torch.Generator().manual_seed(6), member)
    assert torch.equal(a.lap_time_s, b.lap_time_s) and torch.equal(a.wear, b.wear)
    assert not torch.equal(a.lap_time_s, c.lap_time_s)


def test_chunked_sampling_equals_one_call(conditions, monkeypatch):
    model = _model("mlp")
    member = torch.arange(conditions.batch_size)
    whole = model.sample(conditions, torch.Generator().manual_seed(1), member)
    monkeypatch.setattr("world_model.learned.CHUNK_ROWS", 64)
    monkeypatch.setattr("world_model.learned.NET_CHUNK_ROWS", 30)  # network calls within chunks
    chunked = model.sample(conditions, torch.Generator().manual_seed(1), member)
    assert torch.allclose(whole.lap_time_s, chunked.lap_time_s, rtol=1e-6)
    assert torch.allclose(whole.wear, chunked.wear, rtol=1e-6)


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_two_threads_sample_chunks_in_parallel_with_the_same_result(arch, monkeypatch):
    """With two intra-op threads ``sample`` runs whole chunks on two threads: same laps, bit
    for bit, as one thread (the shipped checkpoint, bfloat16 matmuls included)."""
    model = world_model.load_default() if arch == "mlp" else _model(arch)
    monkeypatch.setattr("world_model.learned.CHUNK_ROWS", 1_000)  # 7 chunks: uneven shares
    cond = make_conditions(6_500, seed=4)
    member = torch.arange(cond.batch_size)
    one = model.sample(cond, torch.Generator().manual_seed(2), member)
    calls: list[int] = []
    real = model._run_chunks_in_threads
    monkeypatch.setattr(model, "_run_chunks_in_threads", lambda *a: calls.append(a[2]) or real(*a))
    torch.set_num_threads(2)  # the package fixture restores one thread
    try:
        two = model.sample(cond, torch.Generator().manual_seed(2), member)
        assert torch.get_num_threads() == 2  # restored after the call
    finally:
        torch.set_num_threads(1)
    assert calls == [2]
    for name in ("lap_time_s", "fuel_used", "energy_used", "wear", "tyre_temp_c"):
        assert torch.equal(getattr(one, name), getattr(two, name)), name


def test_routing_gives_each_row_its_members_output():
    g = torch.Generator().manual_seed(0)
    model = _model("mlp")
    x = torch.randn(50, N_FEATURES, generator=g)
    member = torch.randint(3, (50,), generator=g)
    k, pos, width = route_by_member(member, 3)
    routed = unpack(model.net(pack(x, k, pos, 3, width)), k, pos)
    every = model.net(x.unsqueeze(0).expand(3, -1, -1))  # [3, 50, out]
    assert torch.allclose(routed, every[member, torch.arange(50)], atol=1e-6)


def test_member_selects_parameters(conditions):
    model = _model("mlp")
    n = conditions.batch_size
    means = [
        model.predictive(conditions, torch.full((n,), k))["lap_time_s"].mean() for k in range(3)
    ]
    assert not torch.allclose(means[0], means[1])
    # member is taken modulo the ensemble size (the engine passes replica indices)
    wrapped = model.predictive(conditions, torch.full((n,), 4))["lap_time_s"].mean()
    assert torch.allclose(wrapped, means[1])


def test_pace_mode_multipliers_apply_to_the_learned_mean(conditions):
    import dataclasses

    model = _model("mlp")
    n = conditions.batch_size
    mode = lambda m: dataclasses.replace(  # noqa: E731
        conditions, pace_mode=torch.full((n,), int(m))
    )
    push = model.predictive(mode(PaceMode.PUSH))["fuel_used"].mean()
    normal = model.predictive(mode(PaceMode.NORMAL))["fuel_used"].mean()
    ratio = model.physics.pace_mode_fuel[PaceMode.PUSH] / model.physics.pace_mode_fuel[1]
    assert torch.allclose(push, normal * ratio, rtol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_checkpoint_round_trip_gives_identical_samples(arch, conditions, tmp_path):
    model = _model(arch, seed=3)
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded = world_model.load(path)
    assert not list(tmp_path.glob("*.tmp"))
    member = torch.arange(conditions.batch_size)
    a = model.sample(conditions, torch.Generator().manual_seed(9), member)
    b = loaded.sample(conditions, torch.Generator().manual_seed(9), member)
    assert torch.equal(a.lap_time_s, b.lap_time_s) and torch.equal(a.wear, b.wear)
    assert torch.equal(a.tyre_temp_c, b.tyre_temp_c)


def test_load_names_and_errors(tmp_path):
    assert isinstance(world_model.load("parametric"), ParametricLapModel)
    assert isinstance(world_model.load_default(), LapModel)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        world_model.load(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_checkpoint(junk)


def test_load_default_returns_the_shipped_checkpoint_when_present():
    model = world_model.load_default()
    if world_model.DEFAULT_CHECKPOINT.is_file():
        assert isinstance(model, LearnedLapModel)
    else:
        assert isinstance(model, ParametricLapModel)


def test_recurrent_step_starts_like_sample_and_carries_history(conditions):
    import dataclasses

    model = _model("gru", seed=2)
    member = torch.arange(conditions.batch_size)
    sampled = model.sample(conditions, torch.Generator().manual_seed(4), member)
    first, state = model.step(conditions, torch.Generator().manual_seed(4), member)
    assert torch.allclose(first.lap_time_s, sampled.lap_time_s)
    assert state.hidden.shape == (conditions.batch_size, 16)
    # With history the next lap differs from a fresh start on the same noise ...
    fresh = model.sample(conditions, torch.Generator().manual_seed(5), member)
    carried, _ = model.step(conditions, torch.Generator().manual_seed(5), member, state)
    assert not torch.allclose(carried.lap_time_s, fresh.lap_time_s)
    # ... except on an out-lap, which restarts from the summary state.
    out = dataclasses.replace(conditions, out_lap=torch.ones_like(conditions.out_lap))
    fresh_out = model.sample(out, torch.Generator().manual_seed(5), member)
    restarted, _ = model.step(out, torch.Generator().manual_seed(5), member, state)
    assert torch.allclose(restarted.lap_time_s, fresh_out.lap_time_s)


def test_step_needs_the_recurrent_model(conditions):
    with pytest.raises(TypeError, match="gru"):
        _model("mlp").step(conditions, torch.Generator().manual_seed(0))


def test_lap_time_is_read_in_the_timing_regime_other_heads_see_telemetry(conditions):
    import dataclasses

    model = _model("mlp", seed=4)
    worn = dataclasses.replace(conditions, tread=conditions.tread * 0.5, fuel=conditions.fuel * 0.2)
    a, b = model.predictive(conditions), model.predictive(worn)
    assert torch.equal(a["lap_time_s"].mean(), b["lap_time_s"].mean())
    assert not torch.allclose(a["wear_fl"].mean(), b["wear_fl"].mean())
    # ... and tyre age, which timing data carries, still moves the lap-time head
    older = dataclasses.replace(conditions, tyre_age_laps=conditions.tyre_age_laps + 10)
    assert not torch.allclose(a["lap_time_s"].mean(), model.predictive(older)["lap_time_s"].mean())


@pytest.mark.parametrize("activation", ["silu", "relu"])
def test_fused_two_regime_forward_equals_two_passes(activation):
    # The MLP's one-pass forward (biases folded into its matmuls through constant units)
    # must compute exactly what the two separate passes do: lap-time head on the
    # timing-regime inputs, every other head on the full inputs.
    from world_model.fused_mlp import LAP_OUTPUTS as _LAP_OUTPUTS

    net = build_network("mlp", N_FEATURES, 3, 16, 2, torch.Generator().manual_seed(2), activation)
    unit = lambda n: Standardiser(torch.zeros(n), torch.ones(n))  # noqa: E731
    model = LearnedLapModel(net, unit(N_FEATURES), unit(N_TARGETS))
    model.matmul_dtype = torch.float32  # exact comparison; bfloat16 has its own test
    x = torch.randn(3, 40, N_FEATURES, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fused = model._forward(x)
        full = model.net(x)
        timing = model.net(model.timing_regime(x))
    assert torch.allclose(fused[..., :_LAP_OUTPUTS], timing[..., :_LAP_OUTPUTS], atol=1e-5)
    assert torch.allclose(fused[..., _LAP_OUTPUTS:], full[..., _LAP_OUTPUTS:], atol=1e-5)
    # ... and the cached fused weights follow in-place updates of the network
    with torch.no_grad():
        model.net.body[0].weight.mul_(2.0)
    with torch.inference_mode():
        assert torch.allclose(
            model._forward(x)[..., _LAP_OUTPUTS:], model.net(x)[..., _LAP_OUTPUTS:], atol=1e-5
        )


def test_fuel_and_energy_draws_follow_their_scale_mixture_heads():
    # sample()'s fast draw (tail chosen from the rescaled lap-time uniform) must give each
    # row the law predictive() states, with lap time, fuel and energy drawn independently.
    import math

    from world_model.networks import N_TAIL, TAIL_LOGIT0

    n = 20_000
    net = build_network("mlp", N_FEATURES, 2, 16, 2, torch.Generator().manual_seed(3))
    with torch.no_grad():  # a constant, clearly heavy tail: 30 % of the mass 4x as wide
        net.out.weight[..., TAIL_LOGIT0:] = 0.0
        net.out.bias[..., TAIL_LOGIT0 : TAIL_LOGIT0 + N_TAIL] = math.log(0.3 / 0.7)
        net.out.bias[..., TAIL_LOGIT0 + N_TAIL :] = math.log(math.expm1(3.0))
    small = Standardiser(torch.zeros(N_TARGETS), torch.full((N_TARGETS,), 0.05))
    model = LearnedLapModel(
        net, Standardiser(torch.zeros(N_FEATURES), torch.ones(N_FEATURES)), small
    )
    c = make_conditions(n, seed=9)
    member = torch.arange(n) % 2
    out = model.sample(c, torch.Generator().manual_seed(4), member)
    pred = model.predictive(c, member)
    assert pred["fuel_used"].weight.shape[1] == 2
    ecdf = torch.arange(1, n + 1) / n
    pits = {}
    for name, x in (("lap_time_s", out.lap_time_s), ("fuel_used", out.fuel_used)):
        pits[name] = pred[name].cdf(x)
    pits["energy_used"] = pred["energy_used"].cdf(out.energy_used)
    for pit in pits.values():  # Kolmogorov-Smirnov at the 1 % level
        assert float((pit.sort().values - ecdf).abs().max()) < 1.63 / math.sqrt(n)
    # independent draws: PIT correlations within 4 standard errors of 0
    for a, b in (("lap_time_s", "fuel_used"), ("fuel_used", "energy_used")):
        r = torch.corrcoef(torch.stack([pits[a], pits[b]]))[0, 1]
        assert abs(float(r)) < 4.0 / math.sqrt(n)
    # heavy tail: fuel departures in units of the row's core scale have the mixture's
    # variance 1 - w + w f^2 = 5.5 and kurtosis 3 (1 - w + w f^4) / (1 - w + w f^2)^2 = 9.9
    # for w = 0.3, f = 4 (sample sd of the kurtosis estimate ~0.4 at n = 20,000)
    fuel = pred["fuel_used"]
    z = (out.fuel_used - fuel.loc[:, 0]) / fuel.scale[:, 0]
    assert abs(float(z.var()) - 5.5) < 4 * 5.5 * math.sqrt(8.9 / n)
    kurt = float((z - z.mean()).pow(4).mean() / z.var().square())
    assert 7.5 < kurt < 12.5


def test_bfloat16_and_float32_forwards_give_the_same_samples_to_bfloat16_precision():
    # bfloat16 keeps 8 significant bits (rounding ~0.2 %): raw outputs move by a small share
    # of their spread, so the drawn laps agree closely except for the rare row whose
    # mixture component flips at a boundary.
    model = _model("mlp", seed=5)
    c = make_conditions(4_000, seed=2)
    member = torch.arange(c.batch_size)
    out, raw = {}, {}
    for dt in (torch.float32, torch.bfloat16):
        model.matmul_dtype = dt
        out[dt] = model.sample(c, torch.Generator().manual_seed(8), member)
        with torch.inference_mode():
            raw[dt] = model._raw_rows(model.inputs(c), member % model.members)
    spread = float(raw[torch.float32].std())
    assert float((raw[torch.float32] - raw[torch.bfloat16]).abs().max()) < 0.05 * spread
    a, b = out[torch.float32].lap_time_s, out[torch.bfloat16].lap_time_s
    rel = (a - b).abs() / a
    assert float(rel.median()) < 1e-3
    assert float((rel < 1e-2).float().mean()) > 0.99
    # ... and bfloat16 is deterministic: same seed, same laps, bit for bit
    again = model.sample(c, torch.Generator().manual_seed(8), member)
    assert torch.equal(again.lap_time_s, b) and torch.equal(
        again.fuel_used, out[torch.bfloat16].fuel_used
    )


def test_matmul_precision_switch(monkeypatch):
    from world_model import precision

    monkeypatch.setenv(precision.ENV_VAR, "fp32")
    assert precision.matmul_dtype() == torch.float32
    assert _model("mlp").matmul_dtype == torch.float32
    monkeypatch.setenv(precision.ENV_VAR, "bf16")
    assert precision.matmul_dtype() == torch.bfloat16
    monkeypatch.setenv(precision.ENV_VAR, "auto")
    want = torch.bfloat16 if precision.native_bf16() else torch.float32
    assert precision.matmul_dtype() == want
    monkeypatch.setenv(precision.ENV_VAR, "fp16")
    with pytest.raises(ValueError, match="STINTSIM_WM_MATMUL"):
        precision.matmul_dtype()


def test_standardising_a_transposed_matrix_equals_the_row_major_path():
    s = Standardiser(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 4.0]))
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    x[3, 1] = float("nan")
    want = s.transform(x.contiguous())
    transposed = x.t().contiguous().t()
    assert torch.equal(s.transform(transposed), want)
    assert torch.equal(s.transform(transposed.clone(), inplace=True), want)
    assert want[3, 1] == 0.0


def test_reused_scratch_buffers_do_not_leak_between_calls(conditions, monkeypatch):
    # sample() keeps its intermediates in a workspace: a call on other (and more) rows in
    # between, chunked differently, must not change a repeated call's laps, and results
    # must not alias the buffers.
    model = _model("mlp", seed=6)
    member = torch.arange(conditions.batch_size)
    first = model.sample(conditions, torch.Generator().manual_seed(2), member)
    kept = first.lap_time_s.clone()
    monkeypatch.setattr("world_model.learned.CHUNK_ROWS", 100)
    other = make_conditions(700, seed=3)
    model.sample(other, torch.Generator().manual_seed(9), torch.arange(700) % 2)
    monkeypatch.undo()
    again = model.sample(conditions, torch.Generator().manual_seed(2), member)
    assert torch.equal(first.lap_time_s, kept)
    assert torch.equal(again.lap_time_s, first.lap_time_s)
    assert torch.equal(again.wear, first.wear) and torch.equal(again.fuel_used, first.fuel_used)
    assert model._workspace.nbytes() > 0


def test_pickled_model_leaves_its_scratch_buffers_behind(conditions):
    import pickle

    model = _model("mlp", seed=7)
    member = torch.arange(conditions.batch_size)
    before = len(pickle.dumps(model))
    a = model.sample(conditions, torch.Generator().manual_seed(4), member)
    blob = pickle.dumps(model)
    assert len(blob) <= before + 1_000  # the filled workspace is not shipped
    b = pickle.loads(blob).sample(conditions, torch.Generator().manual_seed(4), member)
    assert torch.equal(a.lap_time_s, b.lap_time_s) and torch.equal(a.wear, b.wear)


def test_bfloat16_network_calls_keep_to_few_shapes(monkeypatch):
    # A bfloat16 matmul of a new shape costs several matmuls (oneDNN primitive creation):
    # 216 batch sizes from 1,000 to 9,000 rows must reuse a few dozen call shapes (8 per
    # octave of the last call's rows), and padding must stay under an eighth of the rows
    # (16 for small calls).
    from world_model.fused_mlp import bucket as _bucket

    assert all(r <= _bucket(r) < r + max(16, r // 8 + 1) for r in range(1, 5_000))
    model = _model("mlp", seed=1)
    model.matmul_dtype = torch.bfloat16
    shapes = set()
    forward = model._forward

    def spy(xk, *args, **kwargs):
        shapes.add(tuple(xk.shape))
        return forward(xk, *args, **kwargs)

    monkeypatch.setattr(model, "_forward", spy)
    with torch.inference_mode():
        for n in range(1_000, 9_000, 37):
            c = make_conditions(n, seed=n)
            model._raw_rows(model.inputs(c), torch.arange(n) % model.members)
    assert len(shapes) <= 8 * 12


def test_core_only_draws_lap_time_from_the_component_of_most_weight():
    """Each core-only lap time is a normal draw of its row's heaviest lap-time component,
    so the slow tail of the full mixture is gone while the other heads are unchanged."""
    full = world_model.load_default()
    core = full.with_core_only()
    c = make_conditions(4000, seed=3)
    member = torch.arange(c.batch_size)
    a = full.sample(c, torch.Generator().manual_seed(1), member)
    b = core.sample(c, torch.Generator().manual_seed(1), member)
    mix = core.predictive(c, member)["lap_time_s"]
    k = mix.weight.argmax(dim=1, keepdim=True)
    z = (b.lap_time_s - mix.loc.gather(1, k).squeeze(1)) / mix.scale.gather(1, k).squeeze(1)
    n = c.batch_size
    assert abs(float(z.mean())) < 4.0 / n**0.5  # mean 0 within 4 standard errors
    assert abs(float(z.std()) - 1.0) < 0.05
    ratio = lambda out: out.lap_time_s / c.ref_lap_time_s  # noqa: E731
    assert torch.quantile(ratio(b), 0.9) < torch.quantile(ratio(a), 0.9)
    assert torch.equal(a.wear, b.wear) and torch.equal(a.tyre_temp_c, b.tyre_temp_c)
    assert core.with_flag_effects(True).core_only and not full.core_only


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_fuel_noise_scales_the_fuel_and_energy_draws_about_their_centre(arch, conditions):
    """Only the fuel and energy normals are scaled: lap time and wear are the same draws, and
    each row's fuel (energy) departure from the centre (scale 0) shrinks by the scale."""
    model = _model(arch)
    member = torch.arange(conditions.batch_size)

    def draw(scale: float):
        return model.with_fuel_noise(scale).sample(
            conditions, torch.Generator().manual_seed(3), member
        )

    full, quarter, centre = draw(1.0), draw(0.25), draw(0.0)
    assert torch.equal(full.lap_time_s, quarter.lap_time_s) and torch.equal(full.wear, centre.wear)
    for name in ("fuel_used", "energy_used"):
        a, q, c = (getattr(o, name).double() for o in (full, quarter, centre))
        kept = (a > 0) & (q > 0) & (c > 0)  # the clamp at 0 is not linear
        assert kept.sum() > 0.5 * kept.numel() and not torch.allclose(a[kept], c[kept])
        assert torch.allclose(q[kept] - c[kept], 0.25 * (a[kept] - c[kept]), atol=1e-6)
    assert model.with_fuel_noise(0.5).with_core_only().fuel_noise == 0.5
