"""Every generative solver config on tiny fixed-seed problems: the engine's reference outputs.

``python -m tests.engine_cases`` runs each case below (a ``conf/solver/*.yaml`` with its steps cut to a
few, on a tiny prior built from a seed, two images, one init) and writes its outputs (images, latents,
measurement errors, failures, per-stage curves and their names, and the restart each image kept) to
``tests/data/engine_references.pt``; ``tests/test_engine_references.py`` reruns the cases and compares.
Written once before the engine was refactored to declared optimisation variables, so the test says
that refactoring changed no result. Run single-threaded with eager kernels (as the tests do):
thread count and compiled kernels change reduction order.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "tests" / "data" / "engine_references.pt"
STEPS, MAX_REPEAT, IMAGES, RESTARTS, SEED = 3, 2, 2, 2, 5
#: conf/solver/prilo.yaml's gradient noise when the references were written (its eta is 0.002 since)
REFERENCE_GRADIENT_NOISE = {"eta": 0.02, "gamma": 0.55}

#: name -> (solver config, prior, operator, init, config overrides applied after shrinking)
CASES: dict[str, tuple[str, str, str, str, dict]] = {}
for _init in ("random", "mii", "li"):
    CASES[f"csgm-{_init}"] = ("csgm", "vae", "gaussian_pr", _init, {})
    CASES[f"prilo-{_init}"] = ("prilo", "vae", "gaussian_pr", _init, {})
for _init in ("random", "mii"):
    CASES[f"dpr-{_init}"] = ("dpr", "vae", "gaussian_pr", _init, {})
    CASES[f"ilo-{_init}"] = ("ilo", "vae", "gaussian_pr", _init, {})
    CASES[f"prilo_paper-{_init}"] = ("prilo_paper", "vae", "gaussian_pr", _init, {})
    CASES[f"prilo_dcgan-{_init}"] = ("prilo_dcgan", "dcgan", "fourier_pr", _init, {})
    CASES[f"mganprior-{_init}"] = ("mganprior", "dcgan", "cs_gaussian", _init, {})
CASES.update({
    "csgm_fourier-random": ("csgm", "vae", "fourier_pr", "random", {}),
    "dpr_cs-random": ("dpr", "vae", "cs_gaussian", "random", {}),
    "prilo_fmnist-random": ("prilo_fmnist", "vae", "gaussian_pr", "random", {}),
    "prilo_ablation-random": ("prilo", "vae", "gaussian_pr", "random", {"skip": ["backproject"], "ball": False}),
    "ilo_backproject-random": ("ilo", "vae", "gaussian_pr", "random",
                               {"schedule": [{"kind": "init", "steps": STEPS, "lr": 0.1},
                                             {"kind": "forward", "layer": 1, "steps": STEPS, "radius": 5},
                                             {"kind": "backproject", "layer": 1, "steps": STEPS}]}),
    "csgm_sgd_noise-random": ("csgm", "vae", "gaussian_pr", "random",
                              {"optimizer": "sgd", "gradient_noise": {"eta": 0.02, "gamma": 0.55}}),
    "ilo_dcgan-random": ("ilo_dcgan", "dcgan", "fourier_pr", "random", {}),
    "ilo_stylegan-gaussian": ("ilo_stylegan", "stylegan2", "inpainting", "gaussian", {"loss": {"lpips": 0.0}}),
    # the config's schedule when the references were written: its paper's fourth block (a 64 px generator)
    "ilo_stylegan_l1-random": ("ilo_stylegan_l1", "stylegan2_64", "inpainting", "random",
                               {"schedule": [{"kind": "init", "steps": STEPS, "lr": 0.1, "radius": None}]
                                + [{"kind": "forward", "layer": k, "steps": STEPS, "radius": 1000 * k, "latent_radius": 300}
                                   for k in (1, 2, 3, 4)]}),
    "prilo_stylegan-random": ("prilo_stylegan", "stylegan2", "fourier_pr", "random", {}),
    "prilo_mii_stylegan-mii": ("prilo_mii_stylegan", "stylegan2", "fourier_pr", "mii", {}),
    "mganprior_shared_ones_best-random": ("mganprior", "dcgan", "inpainting", "random",
                                          {"codes_init": "shared", "alpha_init": "ones", "select": "best",
                                           "optimizer": "sgd", "lr": 1e-3}),
    "mganprior_fixed_alpha_layer1-random": ("mganprior", "dcgan", "cs_gaussian", "random",
                                            {"optimize_alpha": False, "layer": 1, "num_codes": 1,
                                             "alpha_init": "ones"}),
    "mganprior_vae-random": ("mganprior", "vae", "gaussian_pr", "random", {"layer": 2}),
})


def prior(name: str):
    """Tiny priors from fixed seeds, with outputs spread over [0, 1]."""
    torch.manual_seed(0)
    if name == "vae":
        from priors.vae import VAE

        p = VAE(image_shape=(1, 8, 8), latent_dim=8, hidden_dim=16)
        with torch.no_grad():
            p.decoder[-1].weight.mul_(6.0)
    elif name == "dcgan":
        from priors.dcgan import DCGANPrior

        p = DCGANPrior(size=28, channels=1, latent_dim=8, width=4)
        for m in p.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                torch.nn.init.normal_(m.weight, 0.0, 0.2)
    else:
        from priors.stylegan2 import StyleGAN2Prior

        p = StyleGAN2Prior(size=64 if name == "stylegan2_64" else 32, channels=1, style_dim=8, n_mlp=1, max_channels=4)
        p.fit_latent_statistics(num_samples=200)
        with torch.no_grad():  # noise injection starts at weight 0 (rosinality): make the noise maps matter
            for m in p.modules():
                if type(m).__name__ == "NoiseInjection":
                    m.weight.fill_(0.3)
    return p.eval().requires_grad_(False)


def operator(name: str, shape):
    from operators import FourierPhaseRetrieval, GaussianCompressedSensing, GaussianPhaseRetrieval, Inpainting

    return {"gaussian_pr": lambda: GaussianPhaseRetrieval(shape, ratio=0.6, seed=1),
            "fourier_pr": lambda: FourierPhaseRetrieval(shape, seed=1),
            "cs_gaussian": lambda: GaussianCompressedSensing(shape, ratio=0.3, seed=1),
            "inpainting": lambda: Inpainting(shape, observed_ratio=0.5, seed=1)}[name]()


def initialization(name: str, p, op, tmp: Path):
    from solvers.initialization import GaussianInit, MagnitudeInformedInit, RandomInit

    if name == "li":
        from priors.encoders import MLPEncoder
        from solvers.learned_init import LearnedInit, save_encoder

        m = op.measurement_shape
        config = {"_target_": "priors.encoders.MLPEncoder", "measurement_shape": list(m),
                  "latent_shape": list(p.latent_shape), "hidden": [8]}
        torch.manual_seed(1)
        save_encoder(tmp / "encoder.pt", config, MLPEncoder(m, p.latent_shape, hidden=[8]), p, "prior.pt", op)
        return LearnedInit(tmp / "encoder.pt", sigma=0.05)
    return {"random": RandomInit, "gaussian": GaussianInit,
            "mii": lambda: MagnitudeInformedInit(num_candidates=16, chunk_size=8)}[name]()


def _shrink_stages(items: list) -> list:
    out = []
    for item in items:
        item = dict(item)
        if "stages" in item:
            item["repeat"] = min(item.get("repeat", 1), MAX_REPEAT)
            item["stages"] = _shrink_stages(item["stages"])
        elif "steps" in item:
            item["steps"] = STEPS
        out.append(item)
    return out


def solver_config(name: str) -> dict:
    """``conf/solver/<name>.yaml`` with its defaults list merged (as Hydra composes it), steps cut to a few."""
    node = OmegaConf.load(ROOT / "conf" / "solver" / f"{name}.yaml")
    # the solver configs it extends (string entries); group overrides such as its default prior are not solver keys
    parents = [d for d in node.pop("defaults", []) if isinstance(d, str) and d != "_self_"]
    merged = OmegaConf.merge(*[OmegaConf.create(solver_config(d)) for d in parents], node) if parents else node
    cfg = OmegaConf.to_container(merged, resolve=True)
    if "schedule" in cfg:
        cfg["schedule"] = _shrink_stages(cfg["schedule"])
        if "steps" in cfg.get("stage_defaults", {}):
            cfg["stage_defaults"]["steps"] = STEPS
    if "num_codes" in cfg:
        cfg.update(steps=STEPS + 1, num_codes=3, layer=2)
    if "gradient_noise" in cfg:  # pinned at the value the references were written with: tuning a default
        cfg["gradient_noise"] = dict(REFERENCE_GRADIENT_NOISE)  # must not read as an engine change
    return cfg


class _KeptRestarts:
    """Records the rows :func:`solvers.base.select_best_restart` keeps, wherever a solver imported it."""

    def __enter__(self):
        import solvers.base

        self.original, self.kept = solvers.base.select_best_restart, []
        self.patched = [m for m in list(sys.modules.values())
                        if getattr(m, "select_best_restart", None) is self.original]

        def record(errors, restarts):
            pick = self.original(errors, restarts)
            self.kept.append(pick.detach().cpu().clone())
            return pick

        for m in self.patched:
            m.select_best_restart = record
        return self

    def __exit__(self, *exc):
        for m in self.patched:
            m.select_best_restart = self.original


def run_case(name: str, tmp: Path) -> dict[str, torch.Tensor]:
    from common.instantiate import instantiate_named

    config, prior_name, op_name, init_name, overrides = CASES[name]
    p = prior(prior_name)
    op = operator(op_name, p.image_shape)
    with torch.no_grad():
        y = op(p(p.sample_latent(IMAGES, generator=torch.Generator().manual_seed(11))))
    cfg = {**solver_config(config), **overrides}
    solver = instantiate_named(cfg, prior=p, init=initialization(init_name, p, op, tmp), restarts=RESTARTS)
    indices = list(range(3, 3 + IMAGES))
    with _KeptRestarts() as kept:
        result = solver.solve(op, y, indices, SEED)
    out = {"x": result.x, "measurement_error": result.measurement_error, "failed": result.failed,
           "kept": torch.cat(kept.kept)}
    if result.latent is not None:
        out["latent"] = result.latent
    out["history"] = torch.tensor([v for curve in result.history.values() for v in curve], dtype=torch.float64)
    out = {k: v.detach().cpu().contiguous() for k, v in out.items()}
    # the stage names and curve lengths, e.g. "00_init:3 01_forward@1:3"
    out["stages"] = " ".join(f"{k}:{len(v)}" for k, v in result.history.items())
    return out


def platform() -> str:
    """What the exact reference values depend on besides the code."""
    return f"torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    import tempfile

    torch.set_num_threads(1)
    os.environ["GENPRIOR_FUSED"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        refs = {name: run_case(name, Path(tmp)) for name in CASES}
    REFERENCES.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"platform": platform(), "cases": refs}, REFERENCES)
    print(f"{len(refs)} cases -> {REFERENCES} ({REFERENCES.stat().st_size / 1024:.0f} kB, {platform()})")


if __name__ == "__main__":
    main()
