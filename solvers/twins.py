"""Choosing among the trivial twins of Fourier phase retrieval without the ground truth.

Without oversampling, |F x| does not change under circular shifts and the conjugate flip
(x[n] -> x[-n], a 180° rotation), so a solver's kept image is often a shifted or flipped twin of
the digit it measured, with the same measurement error. :class:`TwinSelection` wraps a solver and
replaces each returned image by the twin a rule finds most plausible:

* ``centre``: the circular shift that minimises the moment of inertia about the data's centre,
  i.e. brings the mass centre nearest to it (wrap-around included). A dataset prior: MNIST's
  digits are placed by their centre of mass (every training digit of mnist_embedded has it
  within half a pixel of (14, 14), the default centre H/2, W/2; benchmarks/fourier_twins.py
  measures it). The flip is kept as the solver returned it.
* ``centre_elbo``: both flips centred, the one with the higher ELBO (at the encoder mean) under
  the VAE prior kept.
* ``centre_recon``: both flips centred, the one the VAE's encoder-decoder reproduces better
  (smaller |G(mu(t)) - t|^2) kept. Chosen on the validation split by benchmarks/fourier_twins.py.
* ``auto`` (the default): ``centre_recon`` where it was validated — mass-centred data (MNIST) and a
  VAE prior — unless the solver returns G(z_0*) by the paper's output rule (``select: final``);
  ``none`` otherwise (:func:`resolve_rule`).

The oracle alignment (:mod:`evaluation.alignment`) shares the twin parametrisation but uses the
ground truth; these rules never do. docs/TWINS.md: what was tried and measured.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from common.errors import UserInputError
from evaluation.alignment import FourierAlignment, apply_alignment
from solvers.base import SolveResult, Solver

RULES = ("none", "centre", "centre_elbo", "centre_recon")
#: rules that choose the flip with the VAE prior (need its encoder)
VAE_RULES = ("centre_elbo", "centre_recon")


def inertia_per_shift(x: torch.Tensor, centre: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of inertia about ``centre`` of every twin of ``x`` (N, C, H, W): two (N, H, W), unflipped /
    flipped, indexed by the shift t of :func:`evaluation.alignment.apply_alignment`.

    Twin t of x is x[n − t] (flipped: x[t − n]), so the inertia Σ_n x[n − t] w[n] with
    w[n] = |n − centre|² is one circular correlation per flip, computed by FFT.
    """
    n, _, h, w = x.shape
    rows = torch.arange(h, dtype=torch.float64, device=x.device)[:, None]
    cols = torch.arange(w, dtype=torch.float64, device=x.device)[None, :]
    weight = torch.fft.fft2((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
    spec = torch.fft.fft2(x.detach().double().sum(1))
    return torch.fft.ifft2(spec.conj() * weight).real, torch.fft.ifft2(spec * weight).real


def centred(x: torch.Tensor, flipped: torch.Tensor, centre: Sequence[float]) -> torch.Tensor:
    """Each image (flipped where ``flipped``) at the circular shift of least inertia about ``centre``."""
    plain, flip = inertia_per_shift(x, centre)
    inertia = torch.where(flipped[:, None, None], flip, plain).flatten(1)
    t = inertia.argmin(dim=1)
    w = x.shape[-1]
    shift = torch.stack([t // w, t % w], dim=1)
    return apply_alignment(x, FourierAlignment(shift=shift, flipped=flipped, sign=torch.ones_like(t)))


def elbo(prior, x: torch.Tensor) -> torch.Tensor:
    """Per image ELBO of a VAE prior at the encoder mean: log p(x | mu) (Bernoulli) − KL(q(z | x) ‖ N(0, I))."""
    mean, logvar = prior.encode(x)
    log_lik = -F.binary_cross_entropy_with_logits(prior.decode_logits(mean), x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)
    return log_lik - kl


def reconstruction_residual(prior, x: torch.Tensor) -> torch.Tensor:
    """Per image |G(mu(x)) − x|²: how far the VAE's encoder-decoder moves x."""
    return (prior(prior.encode(x)[0]) - x).flatten(1).pow(2).sum(1)


#: plausibility of a twin under the prior (higher: kept), per flip rule
FLIP_SCORES = {"centre_elbo": elbo, "centre_recon": lambda prior, x: -reconstruction_residual(prior, x)}


def resolve_rule(rule: str, mass_centred: bool, prior, select: str | None = None) -> str:
    """``auto`` → the rule validated for this setting (module docstring); other rules unchanged."""
    if rule != "auto":
        _check_rule(rule)
        return rule
    return "centre_recon" if mass_centred and hasattr(prior, "encode") and select != "final" else "none"


@torch.no_grad()
def select_twins(x: torch.Tensor, rule: str, prior=None, centre: Sequence[float] | None = None) -> torch.Tensor:
    """The twin of each image in ``x`` (N, C, H, W) that ``rule`` keeps."""
    if rule == "none":
        return x
    centre = centre if centre is not None else (x.shape[-2] / 2, x.shape[-1] / 2)
    no_flip = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    plain = centred(x, no_flip, centre)
    if rule == "centre":
        return plain
    flipped = centred(x, ~no_flip, centre)
    score = FLIP_SCORES[rule]
    keep_flip = score(prior, flipped.to(prior.device)) > score(prior, plain.to(prior.device))
    return torch.where(keep_flip.to(x.device)[:, None, None, None], flipped, plain)


class TwinSelection(Solver):
    """A solver whose Fourier phase retrieval results are replaced by the twin ``rule`` keeps.

    Only for Fourier magnitudes without oversampling (elsewhere shifts and flips change the
    measurements); the measurement error is unchanged (twins have identical magnitudes).
    Every other attribute is the wrapped solver's.
    """

    def __init__(self, solver, rule: str = "centre_recon", centre: Sequence[float] | None = None):
        _check_rule(rule)
        if rule in VAE_RULES and not hasattr(getattr(solver, "prior", None), "encode"):
            raise UserInputError(f"twin_selection.rule={rule} needs a VAE prior (an encoder); use rule=centre or none")
        if centre is not None and len(centre) != 2:
            raise UserInputError(f"twin_selection.centre must be [row, col] or null, got {list(centre)}")
        self.solver, self.rule = solver, rule
        self.centre = None if centre is None else [float(c) for c in centre]

    requires_prior = True

    @property
    def prior(self):
        return self.solver.prior

    def check_setup(self, operator) -> None:
        self.solver.check_setup(operator)

    def __getattr__(self, name):
        if "solver" not in self.__dict__:  # during unpickling (DDP spawn): no wrapped solver yet
            raise AttributeError(name)
        return getattr(self.__dict__["solver"], name)

    @staticmethod
    def applies(rule: str, operator, prior) -> bool:
        """Whether ``rule`` acts on a generative solver's results for ``operator``: Fourier magnitudes
        without oversampling, and for the VAE rules a prior with an encoder."""
        _check_rule(rule)
        return (rule != "none" and prior is not None and getattr(operator, "name", None) == "fourier_pr"
                and getattr(operator, "oversampling", None) == 1 and (rule not in VAE_RULES or hasattr(prior, "encode")))

    def solve(self, operator, y: torch.Tensor, indices: Sequence[int], seed: int) -> SolveResult:
        result = self.solver.solve(operator, y, indices, seed)
        if self.applies(self.rule, operator, self.solver.prior):
            result.x = select_twins(result.x, self.rule, self.solver.prior, self.centre)
            result.latent = None  # the kept image is a twin of G(latent), no longer G(latent) itself
        return result


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise UserInputError(f"twin_selection.rule must be auto or one of {', '.join(RULES)}, got {rule!r}")
