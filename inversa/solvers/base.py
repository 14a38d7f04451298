"""The shared sampling loop. A solver overrides one hook: `guidance` (gradient-guided methods)
or `step` (methods with their own step posterior, such as C-DPS).

Public API (images in [0, 1], NCHW):

    out = solver(y, operator, generator=gens, num_steps=100, callback=None)
    out.x, out.nfe, out.vjp, out.metadata

Inside, everything runs on the model's [-1, 1] scale: for a linear A, x_m = 2x - 1 gives
y_m = 2y - A(1) = A(x_m) + 2n, so sigma_m = 2 sigma (the literature's convention).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from inversa.device import flush_denormals
from inversa.errors import UserError
from inversa.operators.noise import as_generators
from inversa.pretrained.prior import DiffusionPrior, Prediction
from inversa.solvers.cg import CGLog

SAMPLERS = ("ddpm", "ddim")


@dataclass
class SolverOutput:
    x: torch.Tensor  # restoration in [0, 1]
    nfe: int  # network forward evaluations (per batch)
    vjp: int  # vector-Jacobian products through the network (per batch)
    metadata: dict = field(default_factory=dict)


@dataclass
class Problem:
    """What a step sees of the inverse problem, on the model scale."""

    y: torch.Tensor  # measurement on the [-1, 1] scale
    operator: object
    sigma: float  # Gaussian noise std on the [-1, 1] scale
    generators: list | None


@dataclass
class Context:
    """Per-call state, made by `Solver.prepare` and handed to every hook (as `StepState.ctx`): a solver's
    attributes never change during a call, so one solver may serve several calls (threads, batches).
    Solvers with their own per-call values subclass it (a dataclass with defaults) and name it in
    `Solver.context`."""

    problem: Problem
    timesteps: list[int]
    stride: float  # training steps one respaced step spans (T / num_steps, whatever the start)
    vjp: int = 0  # backward passes through the network so far
    cg: CGLog = field(default_factory=CGLog)  # inner linear solves (worst outcome over the call)
    terms: list = field(default_factory=list)  # per-call state of each composed guidance term

    def record(self) -> dict:
        """Run-dependent values for the output's metadata (step sizes resolved per call, solver logs)."""
        return self.cg.as_dict() if self.cg.solves else {}


@dataclass
class StepState:
    """One step of the loop: x_t (with grad when the solver needs it) and the prior's prediction."""

    index: int
    num_steps: int
    t: int
    t_prev: int  # -1 at the last step
    x_t: torch.Tensor
    pred: Prediction | None
    problem: Problem
    ctx: Context | None = None
    scratch: dict = field(default_factory=dict)  # what one hook hands to another within this step

    @property
    def last(self) -> bool:
        return self.t_prev < 0

    def vjp(self, output: torch.Tensor, inputs: torch.Tensor, *, retain_graph: bool = False) -> torch.Tensor:
        """d(output.sum())/d inputs; counted once per call (one backward pass through the network)."""
        if self.ctx is not None:
            self.ctx.vjp += 1
        (g,) = torch.autograd.grad(output.sum(), inputs, retain_graph=retain_graph)
        return g


class GuidanceTerm:
    """A correction composed onto a gradient-guided solver's own guidance (e.g. CMI's information
    term): `prepare(solver, ctx)` returns the term's per-call state; `estimate(solver, s, state)` runs
    before the base's guidance (its random draws come first); `combine(solver, s, state, g_base, est)`
    returns the total. `params(solver)` lists the term's arguments for run metadata, `record(state)` what
    a call adds. A term registers with `@register(name, composes=default_base)` (inversa.solvers.registry)."""

    name = "term"
    needs_grad = True

    def prepare(self, solver, ctx: Context):
        return None

    def predict_mode(self):
        """A context manager the network forward runs under (e.g. attention that allows double backward)."""
        return contextlib.nullcontext()

    def estimate(self, solver, s: StepState, state) -> torch.Tensor:
        raise NotImplementedError

    def combine(self, solver, s: StepState, state, g_base, estimate) -> torch.Tensor:
        raise NotImplementedError

    def params(self, solver) -> dict:
        return {}

    def record(self, state) -> dict:
        return {}


def randn(shape, generators, *, device, dtype) -> torch.Tensor:
    """Standard normal noise, image i drawn from generators[i] alone (batch invariance)."""
    if generators is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if all(g is generators[0] for g in generators):  # one shared generator: no per-image promise, one draw
        g = generators[0]
        return torch.randn(shape, generator=g, device=g.device, dtype=dtype).to(device)
    return torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype).to(device) for g in generators])


def rademacher(shape, generators, *, device, dtype) -> torch.Tensor:
    """Random ±1 probes (Hutchinson), image i drawn from generators[i] alone."""
    if generators is None:
        return torch.randint(0, 2, shape, device=device).to(dtype) * 2 - 1
    if all(g is generators[0] for g in generators):  # one shared generator: one draw, as in `randn`
        g = generators[0]
        return torch.randint(0, 2, shape, generator=g, device=g.device).to(device, dtype) * 2 - 1
    return torch.stack([torch.randint(0, 2, shape[1:], generator=g, device=g.device).to(device, dtype) * 2 - 1 for g in generators])


class Solver:
    """The shared loop: respaced timesteps, ancestral (DDPM) or DDIM step, guidance hook, progress,
    callbacks, NFE/VJP counts. A method is a subclass that sets `name` (its registry key), `label`,
    `cost` (network forwards, VJPs per step, as documented; `cost_up_to` when inner solvers may stop
    early), `needs_grad`, and overrides a hook: `guidance` or `step`. Its parameters are the keyword
    arguments of its `__init__` (and of the classes it forwards `**kwargs` to), each stored under its
    own name: `params()` reads them back, before or after any call. Per-call values live in the
    context made by `prepare`; `terms` are guidance terms composed on top (see `GuidanceTerm`)."""

    name = "unconditional"
    label = "Unconditional sampling"
    summary = ""  # one plain sentence: what the method is good for (method guides, `inversa solvers`)
    cost: tuple[int, int] = (1, 0)  # network forwards, VJPs per step with the default parameters
    cost_up_to = False
    paper_steps: int | None = None  # the step count the method's paper or official code runs (None: none published)
    needs_grad = False
    needs_svd = False  # the operator's closed-form SVD: refused in `prepare` (and up front by the evaluator)
    latent = False  # True: runs on a latent prior's latents (solvers/latent.py); each kind refuses the other's priors
    variant: str | None = None
    context = Context

    def __init__(self, prior: DiffusionPrior, *, sampler: str = "ddpm", eta: float = 1.0, clip_x0: bool = True,
                 start: float = 1.0, terms: tuple = ()):
        if sampler not in SAMPLERS:
            raise UserError(f"sampler {sampler!r} is not supported; accepted: {', '.join(SAMPLERS)}")
        if not 0 <= eta <= 1:
            raise UserError(f"eta must be in [0, 1], got {eta}")
        if not 0 < start <= 1:
            raise UserError(f"start must be a fraction in (0, 1] of the diffusion, got {start}")
        self.check_prior_kind(prior)
        self.prior = prior
        self.sampler, self.eta, self.clip_x0 = sampler, (1.0 if sampler == "ddpm" else float(eta)), clip_x0
        self.start = float(start)
        self.terms = tuple(terms)

    def check_prior_kind(self, prior) -> None:
        """One UserError when the prior's space does not fit the solver: pixel-space solvers refuse a latent
        prior (`prior.kind == "latent"`) and latent solvers (`latent = True`) a pixel-space one, naming the
        solvers that fit."""
        if prior is None or (getattr(prior, "kind", "pixel") == "latent") == self.latent:
            return
        from inversa.solvers.registry import solver_names

        fit = solver_names("pixel" if self.latent else "latent", priorless=False)
        if self.latent:
            raise UserError(f"solver {self.name} works in the latent space of an autoencoder and model {prior.name} is a "
                            f"pixel-space prior; solvers for it: {', '.join(fit)}")
        raise UserError(f"solver {self.name} works in pixel space and model {prior.name} is a latent model (a UNet over "
                        f"autoencoder latents); latent solvers: {', '.join(fit)}")

    @property
    def requires_grad(self) -> bool:
        """Whether the loop builds x_t with grad: the method's own need, or a composed term's."""
        return self.needs_grad or any(t.needs_grad for t in self.terms)

    # --- hooks ---------------------------------------------------------------------------------
    def guidance(self, s: StepState) -> torch.Tensor | float:
        """The correction added to the unconditional step's x_{t-1} (0 for plain sampling)."""
        return 0.0

    def correction(self, s: StepState) -> torch.Tensor | float:
        """`guidance` plus the composed terms (each term's estimate first, then the base's guidance)."""
        if not self.terms:
            return self.guidance(s)
        states = s.ctx.terms
        estimates = [term.estimate(self, s, st) for term, st in zip(self.terms, states)]
        g = self.guidance(s)
        for term, st, est in zip(self.terms, states, estimates):
            g = term.combine(self, s, st, g, est)
        return g

    def step(self, s: StepState) -> torch.Tensor:
        """x_{t-1}: the prior's reverse step from the prediction, plus the guidance correction."""
        x_prev = self.prior_step(s)
        g = self.correction(s)
        return (x_prev + g).detach()

    def prepare(self, problem: Problem, timesteps: list[int], num_steps: int | None = None) -> Context:
        """The per-call context (e.g. precomputations on the operator). Overrides call this first.
        `num_steps`: the respaced step count (more than len(timesteps) with a warm start; default that)."""
        if self.needs_svd and problem.operator is not None:
            problem.operator.check_svd(self.name)
        stride = self.prior.num_train_timesteps / (num_steps or len(timesteps))
        ctx = self.context(problem=problem, timesteps=timesteps, stride=stride)
        ctx.terms = [term.prepare(self, ctx) for term in self.terms]
        return ctx

    def params(self) -> dict:
        """Method parameters (recorded in run metadata): the constructor's keyword arguments, read back."""
        from inversa.solvers.params import declared_params

        out = {p.name: getattr(self, p.name) for p in declared_params(type(self)) if hasattr(self, p.name)}
        for term in self.terms:
            out.update(term.params(self))
        return out

    def run_metadata(self, ctx: Context) -> dict:
        """What a call adds to `params()` in its metadata: resolved per-call values and solver logs."""
        out = ctx.record()
        for term, st in zip(self.terms, ctx.terms):
            out.update(term.record(st))
        return out

    # --- shared pieces -------------------------------------------------------------------------
    def predict(self, x_t: torch.Tensor, t: int, ctx: Context | None = None) -> Prediction:
        with contextlib.ExitStack() as stack:
            for term in self.terms:
                stack.enter_context(term.predict_mode())
            return self.prior.predict(x_t, t, clip=self.clip_x0)

    def step_moments(self, s: StepState):
        """(mean, variance) of the unconditional reverse step p(x_{t_prev} | x_t), from detached values."""
        pred = Prediction(s.pred.eps.detach(), s.pred.x0hat.detach(), None if s.pred.var_values is None else s.pred.var_values.detach())
        return self.prior.step_mean_var(s.x_t.detach(), s.t, s.t_prev, pred, eta=self.eta)

    def prior_step(self, s: StepState) -> torch.Tensor:
        mean, var = self.step_moments(s)
        if s.last:
            return mean
        noise = randn(mean.shape, s.problem.generators, device=mean.device, dtype=mean.dtype)
        return mean + torch.as_tensor(var, dtype=mean.dtype, device=mean.device) ** 0.5 * noise

    def timesteps(self, num_steps: int) -> list[int]:
        """Respaced timesteps from the diffusers scheduler ("leading" spacing, like DDPM/DDIM); with
        start < 1 only those below start * T (the last ones, as diffusers' img2img `strength`)."""
        T = self.prior.num_train_timesteps
        if not isinstance(num_steps, int) or num_steps <= 0 or num_steps > T:
            raise UserError(f"num_steps must be an integer in [1, {T}], got {num_steps!r}")
        sched = copy.deepcopy(self.prior.scheduler)  # from_config imports every diffusers scheduler (seconds)
        sched.set_timesteps(num_steps)
        ts = [int(t) for t in sched.timesteps]
        return [t for t in ts if t < self.start * T] or ts[-1:]

    # --- the loop ------------------------------------------------------------------------------
    def measurement_problem(self, y: torch.Tensor, operator, generator=None) -> tuple[Problem, tuple[int, ...], torch.Tensor]:
        """(the problem on the model's [-1, 1] scale, the image shape, y on the prior's device): y checked, the
        operator moved to the prior's device, y_m = 2 y - A(1), sigma_m = 2 sigma, one generator per image."""
        from inversa.operators.base import check_image

        check_image(y, "measurement")
        dev, dt = self.prior.device, torch.float64 if self.prior.dtype == torch.float64 else torch.float32
        operator = operator.to(device=dev, dtype=dt)
        y = y.to(dev, dt)
        shape = tuple(operator.input_shape(tuple(y.shape)))
        y_m = 2 * y - operator.A(torch.ones(shape, device=dev, dtype=dt))
        return Problem(y=y_m, operator=operator, sigma=2 * operator.sigma, generators=as_generators(generator, y.shape[0])), shape, y

    def __call__(self, y: torch.Tensor, operator, *, generator=None, num_steps: int = 100, callback=None,
                 progress: bool = True, x_T: torch.Tensor | None = None) -> SolverOutput:
        problem, shape, y = self.measurement_problem(y, operator, generator)
        x_init = None if self.start == 1 or x_T is not None else 2 * problem.operator.naive_inverse(y) - 1
        return self.run(shape, problem, num_steps=num_steps, callback=callback, progress=progress, x_T=x_T,
                        x_init=x_init)

    def sample(self, shape: tuple[int, ...], *, generator=None, num_steps: int = 100, callback=None,
               progress: bool = True, x_T: torch.Tensor | None = None) -> SolverOutput:
        """The loop without a measurement (y and operator are None): generation, e.g. IGDS."""
        if self.start < 1 and x_T is None:
            raise UserError(f"start={self.start} needs an image to start from; generation starts at 1")
        gens = as_generators(generator, shape[0])
        return self.run(tuple(shape), Problem(y=None, operator=None, sigma=0.0, generators=gens), num_steps=num_steps,
                        callback=callback, progress=progress, x_T=x_T)

    def to_image(self, x: torch.Tensor, ctx: Context | None = None) -> torch.Tensor:
        """The loop's final x (model space) -> image in [0, 1]."""
        return ((x + 1) / 2).clamp(0, 1)

    def run(self, shape, problem, *, num_steps, callback=None, progress=True, x_T=None, x_init=None,
            ctx_fields: dict | None = None) -> SolverOutput:
        """The loop on a prepared problem (model scale); `ctx_fields` seed the context (e.g. class labels)."""
        dev, dt = self.prior.device, torch.float64 if self.prior.dtype == torch.float64 else torch.float32
        gens = problem.generators
        ts = self.timesteps(num_steps)
        ctx = self.prepare(problem, ts, num_steps)
        for key, value in (ctx_fields or {}).items():
            setattr(ctx, key, value)
        nfe0, t0 = self.prior.nfe, time.perf_counter()
        x = x_T.to(dev, dt) if x_T is not None else randn(shape, gens, device=dev, dtype=dt)
        if x_init is not None:  # warm start (SDEdit / CCDF): the naive inverse diffused forward to ts[0]
            ab = self.prior.abar(ts[0])
            x = ab**0.5 * x_init.to(dev, dt) + (1 - ab) ** 0.5 * x
        bar = tqdm(total=len(ts), desc=self.name, disable=not progress, leave=False)
        try:
            with flush_denormals(dev):  # the backward passes too, not only the network's forwards
                for i, t in enumerate(ts):
                    t_prev = ts[i + 1] if i + 1 < len(ts) else -1
                    x = self._one_step(StepState(i, len(ts), t, t_prev, x, None, problem, ctx), callback)
                    bar.update(1)
        finally:
            bar.close()
        meta = {"solver": self.name, "variant": self.variant, "sampler": self.sampler, "eta": self.eta,
                "num_steps": len(ts), "start": self.start, "clip_x0": self.clip_x0, "prior": self.prior.name,
                **self.params(), **self.run_metadata(ctx),
                "nfe": self.prior.nfe - nfe0, "vjp": ctx.vjp, "seconds": time.perf_counter() - t0}
        return SolverOutput(x=self.to_image(x, ctx), nfe=meta["nfe"], vjp=ctx.vjp, metadata=meta)

    def _one_step(self, s: StepState, callback):
        with torch.enable_grad() if self.requires_grad else torch.no_grad():
            s.x_t = s.x_t.detach().requires_grad_(self.requires_grad)
            s.pred = self.predict(s.x_t, s.t, s.ctx)
            x_prev = self.step(s)
        if callback is not None:
            callback(s, x_prev)
        return x_prev.detach()
