"""The learned lap model: a deep ensemble (MLP or GRU) behind the LapModel interface.

Network inputs are :func:`world_model.features.build_features` standardised by a scaler fitted
on training rows; outputs are standardised raw targets (:mod:`world_model.targets`), mapped
back to physical units with the lap's reference figures. Lap time is a Gaussian mixture per
member (heavy right tail for traffic and incident laps); fuel and energy are two-Gaussian scale
mixtures (peaked, with heavy tails); wear x4 and tyre temperature are heteroscedastic
Gaussians. Epistemic uncertainty: each row uses one ensemble member (``member``), so one
simulated race keeps one set of parameters.

The lap store records no pace mode or driver rating, and its out-laps include pit-lane time,
so those effects cannot be learned: the model applies the parametric model's coefficients
(:class:`~world_model.parametric.ParametricLapParams`: ``pace_mode_time/fuel/wear``,
``skill_time``, ``out_lap_time``, and for lap time ``compound_pace`` and ``wet_penalty``) as
multipliers on the learned prediction.

Lap time is always predicted in the timing-data regime: the inputs that come with lap times
only from sim races (fuel, energy, tread, tyre and track temperature, wetness, compound,
damage, reference fuel and wear, the previous lap's fuel and wear: :data:`SIM_ONLY_VALUES`)
are withheld from the lap-time head (marked unknown, as in WEC / IMSA timing, which brings
~98 % of the lap times), because with them present the network has seen lap times only from
a few sim races of other cars and extrapolates badly. The lap-time head reads degradation
and fuel burn through tyre age and stint time as the timing data shows them; compound and
wetness act on lap time through the parametric coefficients (``compound_pace``,
``wet_penalty``). The fuel, energy, wear and temperature heads see every input. For the MLP
both regimes share one forward (:meth:`LearnedLapModel._forward_mlp`): the first layer's
weights are widened to compute both regimes' hidden units in one matmul, later hidden layers
run both regimes' rows in one matmul, and the output layer reads each head from the regime
it serves; biases are folded into the matmuls, which run in bfloat16 where the CPU has it
natively (:mod:`world_model.precision`).

The engine's contract is a green-flag lap (it applies flag slow-downs itself), so by default
``sample`` evaluates every row as green; ``flag_effects=True`` conditions on the row's flag
(used by evaluation and by ``world_model.generate`` to reproduce data-like laps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from world_model.distributions import Mixture
from world_model.ensemble import pack, route_by_member, unpack
from world_model.features import (
    FEATURE_NAMES,
    FLAG_INPUTS,
    SIM_ONLY_MISSING,
    SIM_ONLY_VALUES,
    build_features,
)
from world_model.fused_mlp import (
    LAP_OUTPUTS,
    FusedMLP,
    bucket,
    one_intra_op_thread,
    run_chunks_in_threads,
    with_ones,
)
from world_model.interface import FlagState, LapConditions, LapOutcome
from world_model.networks import (
    MIN_SCALE,
    N_GAUSS,
    N_MIX,
    N_OUT,
    N_TAIL,
    TAIL_COLUMNS,
    TAIL_LOGIT0,
    GRUEnsemble,
    Heads,
    MLPEnsemble,
    decode,
)
from world_model.parametric import EffectTables, ParametricLapParams
from world_model.precision import matmul_dtype
from world_model.scaling import Standardiser
from world_model.targets import (
    ENERGY,
    FUEL,
    LAP,
    N_TARGETS,
    TARGET_NAMES,
    TEMP,
    WEAR0,
    target_affine,
)
from world_model.workspace import Workspace

_FLAG_COLUMNS = slice(FEATURE_NAMES.index(FLAG_INPUTS[0]), FEATURE_NAMES.index(FLAG_INPUTS[-1]) + 1)
_GREEN_ONE_HOT = torch.nn.functional.one_hot(
    torch.tensor(int(FlagState.GREEN)), len(FLAG_INPUTS)
).float()

CHUNK_ROWS = 16_384
"""Rows per chunk when sampling (features, network, draw): bounds memory and keeps the
intermediates cache-sized while amortising the per-operation overhead."""
NET_CHUNK_ROWS = 8_192
"""Rows per network call: the hidden activations of smaller calls stay in the L2 cache."""
BF16_MIN_ROWS = 1_024
"""Calls of fewer rows run the MLP in float32 (bfloat16's conversions cost more than its
matmuls save at that size)."""
_BELOW_ONE = 1.0 - 2.0**-24
"""The largest float32 below 1: keeps derived uniforms in [0, 1)."""
_OUTCOME_FIELDS = dataclasses.fields(LapOutcome)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """``softplus(x)`` as a new contiguous tensor, ~3x faster than torch's on CPU: log(1 +
    exp(x)) with ``x`` clipped at 80 (exact to float32 rounding below that; a raw scale
    output that large means a scale of e^80 standard deviations, never met)."""
    return x.clamp(max=80.0).exp_().add_(1.0).log_()


def _rows(c: LapConditions, rows: slice) -> LapConditions:
    """The conditions of a contiguous range of rows, as views (no copy)."""
    return c.index(rows)


@dataclass(frozen=True)
class RecurrentState:
    """Per-row memory of the GRU model between laps (for engines that carry it)."""

    hidden: torch.Tensor
    """GRU state ``[N, H]``."""
    prev: torch.Tensor
    """Standardised outcomes of the previous lap ``[N, N_TARGETS]`` (model space, before
    the pace-mode and skill multipliers)."""
    prev_mask: torch.Tensor
    """1.0 where ``prev`` is known ``[N, N_TARGETS]``."""


class LearnedLapModel:
    """:class:`~world_model.interface.LapModel` backed by a trained ensemble network."""

    tyre_age_is_stint_laps = True
    """Tyre age = laps since the stop (:data:`~world_model.interface.TYRE_AGE_IS_STINT_LAPS`)."""

    def __init__(
        self,
        net: MLPEnsemble | GRUEnsemble,
        features: Standardiser,
        targets: Standardiser,
        physics: ParametricLapParams | None = None,
        *,
        flag_effects: bool = False,
        core_only: bool = False,
        fuel_noise: float = 1.0,
        info: dict | None = None,
    ) -> None:
        self.net = net.eval()
        self.core_only = core_only
        """Draw lap time from the core mixture component only (see :meth:`with_core_only`)."""
        self.fuel_noise = fuel_noise
        """Multiplier of the fuel and energy draws' spread about their centre (see
        :meth:`with_fuel_noise`)."""
        self.features = features
        self.targets = targets
        self.physics = physics or ParametricLapParams()
        self.flag_effects = flag_effects
        self.info = dict(info or {})
        self._effects = EffectTables(self.physics)
        # Timing regime: telemetry values unknown (0 once standardised), indicators at 1.
        names = SIM_ONLY_VALUES + SIM_ONLY_MISSING
        self._withheld_columns = torch.tensor([FEATURE_NAMES.index(n) for n in names])
        raw = torch.tensor([float("nan")] * len(SIM_ONLY_VALUES) + [1.0] * len(SIM_ONLY_MISSING))
        cols = self._withheld_columns
        self._withheld_values = torch.nan_to_num(
            (raw - features.mean[cols]) / features.scale[cols], nan=0.0
        )
        self.matmul_dtype = matmul_dtype()
        """Hidden-layer matmul dtype of sampling (:mod:`world_model.precision`; float32: full)."""
        self._workspace = Workspace()
        """Scratch buffers of ``sample`` (so one model samples from one thread at a time)."""
        self._chunk_workspaces: list[Workspace] = []
        """One per chunk worker of a multi-threaded ``sample`` call."""
        self._fused = self._new_fused()

    def _new_fused(self) -> FusedMLP | None:
        """The fast two-regime MLP forward (``None`` for the GRU or a layer-less MLP)."""
        if isinstance(self.net, MLPEnsemble) and self.net.n_layers >= 1:
            return FusedMLP(self.net, self._withheld_columns, self._withheld_values)
        return None

    def __getstate__(self) -> dict:
        """Pickled (e.g. shipped to Ray workers) without scratch buffers or weight caches."""
        state = self.__dict__.copy()
        state.update(_workspace=Workspace(), _chunk_workspaces=[], _fused=self._new_fused())
        return state

    @property
    def arch(self) -> str:
        return self.net.arch

    @property
    def members(self) -> int:
        return self.net.members

    def variant(self, physics: ParametricLapParams | None = None, **kw: object) -> LearnedLapModel:
        """The same network and scalers with some sampling settings or ``physics`` changed."""
        settings = {
            "flag_effects": self.flag_effects,
            "core_only": self.core_only,
            "fuel_noise": self.fuel_noise,
        }
        m = LearnedLapModel(
            self.net,
            self.features,
            self.targets,
            physics or self.physics,
            **(settings | kw),
            info=self.info,
        )
        m.matmul_dtype = self.matmul_dtype
        return m

    def with_flag_effects(self, on: bool = True) -> LearnedLapModel:
        """The same model, conditioning (``True``) or not on each row's flag state."""
        return self.variant(flag_effects=on)

    def with_core_only(self, on: bool = True) -> LearnedLapModel:
        """The same model drawing lap time from its core pace component only (the mixture
        component of most weight, per lap), for an engine that simulates the rest itself.

        Timing data labels neither traffic, local incidents, slow zones nor rain, so the slower
        components learn them as noise; the engine adds them itself, and drawing them twice gave
        a dry Le Mans a green-lap q90 of 222 s against the real 213 s (``stintsim validate``)."""
        return self.variant(core_only=on)

    def with_fuel_noise(self, scale: float) -> LearnedLapModel:
        """The same model with the fuel and energy draws' spread about their centre scaled
        by ``scale`` (1: as fitted; 0: every lap at the centre). Why the engine scales it
        down: ``engine.scenario.Scenario.lap_model_fuel_noise``."""
        return self.variant(fuel_noise=scale)

    # -- inputs and raw heads ------------------------------------------------------------

    def inputs(self, c: LapConditions, workspace: Workspace | None = None) -> torch.Tensor:
        """Standardised network inputs ``[N, F]`` of the conditions (built in ``workspace``'s
        buffer when given: valid until the workspace's next use)."""
        out = None
        if workspace is not None:
            out = workspace.get("features", (len(FEATURE_NAMES), c.batch_size), torch.float32)
        x = build_features(c, out)
        if not self.flag_effects:
            x[:, _FLAG_COLUMNS] = _GREEN_ONE_HOT
        return self.features.transform(x, inplace=True)  # x is ours: no second buffer

    def _raw_all(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs of every member ``[K, N, N_OUT]`` (stateless: GRU from its summary)."""
        xk = x.unsqueeze(0).expand(self.members, -1, -1)
        return self._forward(xk)

    def timing_regime(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised inputs with the sim-only inputs (:data:`SIM_ONLY_VALUES`) marked
        unknown, as in timing data."""
        x = x.clone()
        x[..., self._withheld_columns] = self._withheld_values
        return x

    def combine(self, full: torch.Tensor, timing: torch.Tensor) -> torch.Tensor:
        """Lap-time head from the timing-regime pass, every other head from the full pass."""
        return torch.cat([timing[..., :LAP_OUTPUTS], full[..., LAP_OUTPUTS:]], dim=-1)

    def _forward(
        self,
        xk: torch.Tensor,
        out: torch.Tensor | None = None,
        workspace: Workspace | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Raw outputs of packed inputs ``[K, B, F]`` (stateless: GRU from its summary): lap
        time from the timing regime, every other head from the full inputs; written into
        ``out`` ``[K, B, N_OUT]`` when given (MLP intermediates in ``workspace``)."""
        if self._fused is not None:
            return self._fused.forward(xk, dtype or self.matmul_dtype, out, workspace)
        b = xk.shape[1]
        both = xk.repeat(1, 2, 1)
        both[:, b:, self._withheld_columns] = self._withheld_values
        if isinstance(self.net, GRUEnsemble):
            zeros = both.new_zeros(both.shape[0], 2 * b, N_TARGETS)
            res, _ = self.net.step(both, zeros, zeros, self.net.initial_state(2 * b))
        else:
            res = self.net(both)
        res[:, :b, :LAP_OUTPUTS] = res[:, b:, :LAP_OUTPUTS]
        return res[:, :b] if out is None else out.copy_(res[:, :b])

    def _raw_rows(
        self,
        x: torch.Tensor,
        member: torch.Tensor,
        workspace: Workspace | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Raw outputs ``[N, N_OUT]``, row ``i`` from member ``member[i]`` (intermediates
        and the result in ``workspace``'s buffers when given).

        Network calls take ``NET_CHUNK_ROWS / K`` rows per member. In bfloat16 the last call
        is padded up to a bucket size (:func:`~world_model.fused_mlp.bucket`): the engine's
        batch sizes change from call to call, and a oneDNN bfloat16 matmul of a shape not
        seen before costs several times the matmul (primitive creation), so calls keep to a
        few shapes.
        ``dtype``: the matmul dtype (default: :meth:`_call_dtype` of this batch)."""
        k, pos, width = route_by_member(member, self.members)
        step = max(NET_CHUNK_ROWS // self.members, 1)
        mlp = self._fused is not None
        dtype = dtype or self._call_dtype(x.shape[0])
        if mlp and dtype != torch.float32:
            full, rest = divmod(width, step)
            width = full * step + (min(step, bucket(rest)) if rest else 0)
        if mlp:  # pack the network's own input: half the bytes in bfloat16
            x = with_ones(x, dtype, workspace)
        ws = workspace
        slots = (self.members * width, *x.shape[1:])
        packed = None if ws is None else ws.get("packed", slots, x.dtype)
        xp = pack(x, k, pos, self.members, width, packed)
        shape = (self.members, width, N_OUT)
        raw = (
            xp.new_empty(shape, dtype=torch.float32)
            if ws is None
            else ws.get("raw", shape, torch.float32)
        )
        for start in range(0, width, step):
            part = slice(start, start + step)
            self._forward(xp[:, part], out=raw[:, part], workspace=ws, dtype=dtype)
        rows = None if ws is None else ws.get("rows", (x.shape[0], N_OUT), torch.float32)
        return unpack(raw, k, pos, rows)

    def _call_dtype(self, rows: int) -> torch.dtype:
        """Matmul dtype of a sampling call of ``rows`` rows: :attr:`matmul_dtype`, or float32
        below :data:`BF16_MIN_ROWS` rows (faster at that size)."""
        return self.matmul_dtype if rows >= BF16_MIN_ROWS else torch.float32

    # -- predictive distributions --------------------------------------------------------

    def _physics_factors(self, c: LapConditions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Multipliers of lap time, fuel/energy and wear for effects absent from the data."""
        p = self.physics
        # Compound and wetness (unknown in timing data: code -1 / NaN, then no term).
        known = (c.compound >= 0) & ~c.wetness.isnan()
        code = c.compound.clamp(min=0)
        wet = torch.nan_to_num(c.wetness, nan=0.0)
        e = self._effects
        lap = (
            1.0
            + e.mode_time[c.pace_mode]
            - p.skill_time * c.driver_skill
            + p.out_lap_time * c.out_lap
            + torch.where(known, e.grip(code, wet), 0.0)
        )
        return lap, e.mode_fuel[c.pace_mode], e.mode_wear[c.pace_mode]

    def _channel_slopes(self, c: LapConditions) -> tuple[torch.Tensor, torch.Tensor]:
        """Slope and offset ``[N, N_TARGETS]`` from standardised raw output to physical units,
        physics multipliers included."""
        lap_f, fuel_f, wear_f = self._physics_factors(c)
        # Tyre temperature's factor is 1, so one formula serves every channel.
        factor = torch.stack(
            [lap_f, fuel_f, fuel_f, wear_f, wear_f, wear_f, wear_f, torch.ones_like(lap_f)], dim=0
        ).t()
        slope_t, offset_t = target_affine(c)
        slope = slope_t * self.targets.scale * factor
        offset = torch.addcmul(offset_t, slope_t, self.targets.mean).mul_(factor)
        return slope, offset

    def mixtures_from_heads(self, heads: Heads, c: LapConditions) -> dict[str, Mixture]:
        """Predictive mixtures per channel (physical units) from heads ``[K, N, ...]``: the
        equal-weight union over the ``K`` members."""
        slope, offset = self._channel_slopes(c)
        k = heads.lap_loc.shape[0]
        out: dict[str, Mixture] = {}
        lap_parts = [
            Mixture(
                torch.softmax(heads.lap_logits[i], dim=-1), heads.lap_loc[i], heads.lap_scale[i]
            ).affine(slope[:, LAP], offset[:, LAP])
            for i in range(k)
        ]
        out[TARGET_NAMES[LAP]] = Mixture.union(lap_parts)
        for j in range(N_GAUSS):
            col = j + 1
            if j in TAIL_COLUMNS:
                t = TAIL_COLUMNS.index(j)
                parts = [
                    Mixture.scale_mixture(
                        heads.loc[i][:, j],
                        heads.scale[i][:, j],
                        torch.sigmoid(heads.tail_logit[i][:, t]),
                        heads.tail_factor[i][:, t],
                    )
                    for i in range(k)
                ]
            else:
                parts = [
                    Mixture(
                        torch.ones_like(heads.loc[i][:, j : j + 1]),
                        heads.loc[i][:, j : j + 1],
                        heads.scale[i][:, j : j + 1],
                    )
                    for i in range(k)
                ]
            parts = [p.affine(slope[:, col], offset[:, col]) for p in parts]
            out[TARGET_NAMES[col]] = Mixture.union(parts)
        return out

    @torch.inference_mode()
    def predictive(
        self, c: LapConditions, member: torch.Tensor | None = None
    ) -> dict[str, Mixture]:
        """Predictive mixture of every channel; ``member=None`` gives the whole ensemble's
        (epistemic + aleatoric) predictive, else each row's member only."""
        x = self.inputs(c)
        if member is None:
            heads = decode(self._raw_all(x))
        else:
            heads = decode(self._raw_rows(x, member.long() % self.members).unsqueeze(0))
        return self.mixtures_from_heads(heads, c)

    # -- sampling ------------------------------------------------------------------------

    def _draw(
        self, raw: torch.Tensor, c: LapConditions, u: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, LapOutcome]:
        """One outcome per row from raw outputs ``[N, N_OUT]``, uniforms ``u`` ``[N, 1]``
        (mixture components) and standard normals ``z`` ``[N, N_TARGETS]``; also returns the
        draw in standardised model space ``[N, N_TARGETS]``.

        Same law as :func:`~world_model.networks.decode` + :meth:`mixtures_from_heads`,
        written for speed: the lap-time component is picked on unnormalised weights and only
        its scale goes through softplus; the fuel and energy heads' core-or-tail choices use
        fresh uniforms made from ``u`` (:meth:`_tail_uniform`); physical units are reached
        without building the ``[N, N_TARGETS]`` slope and offset matrices."""
        m, g = N_MIX, N_GAUSS
        if self.core_only:
            # The component of most weight; ``u`` chose nothing, so it stays a fresh uniform.
            comp = raw[:, :m].argmax(dim=1, keepdim=True)
            v = u.clamp(0.0, _BELOW_ONE)
        else:
            logits = raw[:, :m]
            e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
            cum = e.cumsum(dim=1)
            target = u * cum[:, -1:]
            comp = (cum < target).sum(dim=1, keepdim=True).clamp_(max=m - 1)
            v = self._tail_uniform(e, cum, target, comp)
        picked = raw.gather(1, torch.cat([comp + m, comp + 2 * m], dim=1))  # loc, raw scale
        std = torch.empty_like(z)
        lap_scale = _softplus(picked[:, 1:]).add_(MIN_SCALE)
        torch.addcmul(picked[:, :1], lap_scale, z[:, :1], out=std[:, :1])
        # one call covers the scales and the tail factors (and the tail logits, unused)
        spread = _softplus(raw[:, 3 * m + g :])
        scale = spread[:, :g].add(MIN_SCALE)
        factor = spread[:, g + N_TAIL :].add_(1.0)
        p_tail = torch.sigmoid(raw[:, TAIL_LOGIT0 : TAIL_LOGIT0 + N_TAIL])
        for t, col in enumerate(TAIL_COLUMNS):
            p = p_tail[:, t : t + 1]
            tail = v < p
            scale[:, col : col + 1].mul_(torch.where(tail, factor[:, t : t + 1], 1.0))
            if t + 1 < N_TAIL:  # the choice's own remainder: the next channel's uniform
                v = torch.where(tail, v / p, (v - p) / (1.0 - p)).clamp_(0.0, _BELOW_ONE)
        torch.addcmul(raw[:, 3 * m : 3 * m + g], scale, z[:, 1:], out=std[:, 1:])
        return std, self._physical(std, c)

    @staticmethod
    def _tail_uniform(
        e: torch.Tensor, cum: torch.Tensor, target: torch.Tensor, comp: torch.Tensor
    ) -> torch.Tensor:
        """A uniform on [0, 1) ``[N, 1]`` independent of the lap-time component ``comp``:
        where ``target`` (``u`` times the total weight) fell inside the picked component's
        slice of the cumulative weights ``cum`` (``e``: the unnormalised weights). Given the
        component, that position is again uniform, so no more noise needs drawing."""
        inside = (cum.gather(1, comp) - target).div_(e.gather(1, comp))
        return inside.neg_().add_(1.0).clamp_(0.0, _BELOW_ONE)

    def _physical(self, std: torch.Tensor, c: LapConditions) -> LapOutcome:
        """Outcomes in physical units from standardised draws ``[N, N_TARGETS]`` (same map as
        :meth:`_channel_slopes`: target affine, then the physics multipliers)."""
        lap_f, fuel_f, wear_f = self._physics_factors(c)
        r = torch.addcmul(self.targets.mean, std, self.targets.scale)  # raw targets
        lap = r[:, LAP].mul(0.01).add_(1.0).mul_(lap_f).mul_(c.ref_lap_time_s)
        ref_fe = torch.stack([c.ref_fuel_per_lap, c.ref_energy_per_lap], dim=1)
        fuel_energy = r[:, FUEL : ENERGY + 1].add(1.0).mul_(ref_fe).mul_(fuel_f.unsqueeze(1))
        wear = r[:, WEAR0 : WEAR0 + 4].add(1.0).mul_((c.ref_wear_per_lap * wear_f).unsqueeze(1))
        return LapOutcome(
            lap_time_s=torch.maximum(lap, 0.9 * c.ref_lap_time_s),
            fuel_used=fuel_energy[:, 0].clamp_(min=0.0),
            energy_used=fuel_energy[:, 1].clamp_(min=0.0),
            wear=wear.clamp_(min=0.0),
            tyre_temp_c=torch.add(c.tyre_temp_c, r[:, TEMP], alpha=10.0),
        )

    def sample(
        self,
        conditions: LapConditions,
        generator: torch.Generator,
        member: torch.Tensor | None = None,
    ) -> LapOutcome:
        """One lap outcome per row. ``member`` picks the ensemble member per row (taken
        modulo the ensemble size); ``None`` draws one per row from ``generator``.

        Every call draws fixed-shape noise up front (member if needed, then ``[N, 1]``
        uniforms and ``[N, 8]`` normals), so results do not depend on the chunking and equal
        conditions on equal seeds give equal laps (common random numbers)."""
        n = conditions.batch_size
        if member is None:
            member = torch.randint(self.members, (n,), generator=generator)
        else:
            member = member.long() % self.members
        u = torch.rand(n, 1, generator=generator)
        z = self._normals(n, generator)
        ws, dt = self._workspace, self._call_dtype(n)
        threads = torch.get_num_threads()
        with torch.inference_mode():
            if n <= CHUNK_ROWS:  # one chunk: on one thread, however many torch has
                with one_intra_op_thread():
                    raw = self._raw_rows(self.inputs(conditions, ws), member, ws, dt)
                    return self._draw(raw, conditions, u, z)[1]
            # Whole pipeline per chunk (features, network, draw) so its tensors stay in cache;
            # chunks are views of the conditions, not copies. With several torch threads the
            # chunks share them (two threads gain from two chunks up; splitting one chunk
            # lost: 0.93 against 1.20 M car-laps/s at 8,192 rows in two halves).
            chunks = [slice(a, min(a + CHUNK_ROWS, n)) for a in range(0, n, CHUNK_ROWS)]

            def run(rows: slice, workspace: Workspace) -> LapOutcome:
                c = _rows(conditions, rows)
                raw = self._raw_rows(self.inputs(c, workspace), member[rows], workspace, dt)
                return self._draw(raw, c, u[rows], z[rows])[1]

            if threads > 1:
                parts = self._run_chunks_in_threads(run, chunks, min(threads, len(chunks)), dt)
            else:
                parts = [run(rows, ws) for rows in chunks]
            return LapOutcome(
                **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in _OUTCOME_FIELDS}
            )

    def _normals(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normals ``[n, N_TARGETS]``, the fuel and energy columns scaled by
        :attr:`fuel_noise` (the same generator draws either way)."""
        z = torch.randn(n, N_TARGETS, generator=generator)
        if self.fuel_noise != 1.0:
            z[:, FUEL : ENERGY + 1].mul_(self.fuel_noise)
        return z

    def _run_chunks_in_threads(
        self,
        run: Callable[[slice, Workspace], LapOutcome],
        chunks: list[slice],
        workers: int,
        dtype: torch.dtype,
    ) -> list[LapOutcome]:
        """``run`` over the chunks on ``workers`` threads (one scratch workspace each), in
        chunk order (:func:`~world_model.fused_mlp.run_chunks_in_threads`)."""
        while len(self._chunk_workspaces) < workers:
            self._chunk_workspaces.append(Workspace())
        fused = self._fused
        prepare = None if fused is None else (lambda: fused.weights(dtype))
        return run_chunks_in_threads(run, chunks, self._chunk_workspaces[:workers], prepare)

    def step(
        self,
        conditions: LapConditions,
        generator: torch.Generator,
        member: torch.Tensor | None = None,
        state: RecurrentState | None = None,
    ) -> tuple[LapOutcome, RecurrentState]:
        """One lap per row for the recurrent model, carrying each car's history.

        ``state`` is the previous call's returned state for the same rows (``None`` at the
        start: the learned summary state, as ``sample`` uses). Rows on an out-lap restart from
        the summary state, as stints do in training. Noise is drawn as in ``sample``, so with
        ``state=None`` the outcome equals ``sample``'s for the same generator state.
        """
        if not isinstance(self.net, GRUEnsemble):
            raise TypeError("step() needs the recurrent (gru) model; use sample()")
        n = conditions.batch_size
        if member is None:
            member = torch.randint(self.members, (n,), generator=generator)
        else:
            member = member.long() % self.members
        u = torch.rand(n, 1, generator=generator)
        z = self._normals(n, generator)
        with torch.inference_mode():
            k, pos, width = route_by_member(member, self.members)
            x = pack(self.inputs(conditions), k, pos, self.members, width)
            h0 = self.net.initial_state(width)
            if state is None:
                h = h0
                prev = x.new_zeros(self.members, width, N_TARGETS)
                mask = torch.zeros_like(prev)
            else:
                restart = pack(conditions.out_lap > 0, k, pos, self.members, width).unsqueeze(-1)
                h = torch.where(restart, h0, pack(state.hidden, k, pos, self.members, width))
                prev = pack(state.prev, k, pos, self.members, width)
                mask = pack(state.prev_mask, k, pos, self.members, width) * (~restart).float()
            raw, h_next = self.net.step(x, prev, mask, h)
            raw_timing, _ = self.net.step(self.timing_regime(x), prev, mask, h)
            raw = self.combine(raw, raw_timing)
            std, outcome = self._draw(unpack(raw, k, pos), conditions, u, z)
            next_state = RecurrentState(unpack(h_next, k, pos), std, torch.ones_like(std))
        return outcome, next_state
