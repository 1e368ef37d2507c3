"""Which Fourier twin to keep, without the ground truth: rules tuned on the validation split, reported on test.

    python benchmarks/fourier_twins.py --prior outputs/priors/vae_mnist_embedded.pt --images 64

Runs the default inversion (``python invert.py``: PRILO-MII, 4 restarts, seed 0, Fourier magnitudes
without oversampling) on the first ``--images`` digits of the validation and of the test split
(reconstructions cached under ``--cache``), then applies every twin rule to the kept images. Per
rule: raw PSNR/SSIM, the fraction of images whose kept twin is the oracle's (the ground truth's
best alignment of it is the identity), and beside them the oracle-aligned PSNR, which no rule can
change. The rule with the highest raw PSNR on the validation split is the one reported (test).
Rules (solvers/twins.py for the ones invert.py offers):

* ``none``: as returned;  ``elbo_all``: the twin (all shifts, both flips) of highest ELBO;
* ``centre``: least moment of inertia about the data centre (mass centre nearest to it);
* ``centre_elbo`` / ``centre_recon`` / ``centre_refit``: both flips centred, the flip chosen by the
  ELBO, by the encoder-decoder residual |G(mu(t)) - t|^2, or by the residual of a short latent refit;
* ``centre_elbo_1px``: the centred twin and its 1-pixel neighbours, both flips, highest ELBO;
* ``centre_elbo_margin_<m>``: centred, the solver's flip kept unless the other flip's ELBO is higher by m nats;
* ``centre_oracle_flip`` (oracle): centred, flip chosen with the ground truth: the ceiling of any flip rule.

Also measured: the data centre (mass centres of the training digits) and, as a check of each rule
on perfect reconstructions, the fraction of random exact twins of the test digits it maps back.
Results: benchmarks/results/fourier_twins.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose_invert, save_results  # noqa: E402
from common.atomic import torch_save  # noqa: E402
from common.checkpoint import load_tensors  # noqa: E402
from common.instantiate import instantiate, instantiate_named  # noqa: E402
from evaluation.alignment import FourierAlignment, apply_alignment, find_alignment  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402
from priors.io import load_prior  # noqa: E402
from solvers.twins import RULES as TWIN_RULES, centred, elbo, select_twins  # noqa: E402


def split_images(split: str, num_images: int, data: str = "mnist_embedded") -> tuple[torch.Tensor, list[int]]:
    cfg = compose_invert(f"data={data}")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    dataset = {"train": dm.train_set, "val": dm.val_set, "test": dm.test_set}[split]
    items = [dataset[i] for i in range(min(num_images, len(dataset)))]
    return torch.stack([d["image"] for d in items]), [d["index"] for d in items]


def mass_centres(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    m = x.sum((1, 2, 3))
    return torch.stack([(x.sum((1, 3)) * torch.arange(h)).sum(1) / m, (x.sum((1, 2)) * torch.arange(w)).sum(1) / m], 1)


def reconstruct(prior, prior_path: str, split: str, num_images: int, cache: Path) -> dict:
    """The default invert.py run's kept images on a split (cached per prior file, split and count)."""
    stamp = Path(prior_path).stat().st_mtime_ns
    path = cache / f"{split}_{num_images}.pt"
    if path.exists():
        saved = load_tensors(path)
        if saved["prior"] == prior_path and saved["stamp"] == stamp:
            return saved
    x, indices = split_images(split, num_images)
    cfg = compose_invert()  # the defaults of python invert.py
    operator = instantiate(cfg.operator)
    solver = instantiate_named(cfg.solver, prior=prior, init=instantiate_named(cfg.init), restarts=cfg.restarts)
    start = time.perf_counter()
    result = solver.solve(operator, operator(x), indices, seed=cfg.seed)
    saved = {"prior": prior_path, "stamp": stamp, "x": x, "indices": indices, "x_hat": result.x.detach(),
             "measurement_error": result.measurement_error, "seconds": time.perf_counter() - start,
             "method": f"{cfg.solver.name}-{cfg.init.name}"}
    torch_save(saved, path)
    return saved


def neighbours(x: torch.Tensor) -> torch.Tensor:
    """(N, 9, C, H, W): x and its 8 one-pixel circular shifts."""
    return torch.stack([x.roll((dr, dc), dims=(-2, -1)) for dr in (-1, 0, 1) for dc in (-1, 0, 1)], dim=1)


@torch.no_grad()
def elbo_all(prior, x: torch.Tensor) -> torch.Tensor:
    """Among all shifts and both flips of each image, the twin of highest ELBO."""
    n, c, h, w = x.shape
    out = []
    for img in x:
        shifts = torch.arange(h * w)
        cands = []
        for flip in (False, True):
            al = FourierAlignment(shift=torch.stack([shifts // w, shifts % w], 1), flipped=torch.full((h * w,), flip),
                                  sign=torch.ones(h * w, dtype=torch.long))
            cands.append(apply_alignment(img.expand(h * w, c, h, w), al))
        cands = torch.cat(cands)
        out.append(cands[elbo(prior, cands).argmax()])
    return torch.stack(out)


def latent_refit_residual(prior, x: torch.Tensor, steps: int = 100, lr: float = 0.05) -> torch.Tensor:
    """|G(z) - x|^2 per image after ``steps`` Adam steps on z from the encoder mean."""
    with torch.no_grad():
        z = prior.encode(x)[0]
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = (prior(z) - x).flatten(1).pow(2).sum(1)
            loss.sum().backward()
            opt.step()
    with torch.no_grad():
        return (prior(z) - x).flatten(1).pow(2).sum(1)


def pick(plain: torch.Tensor, flipped: torch.Tensor, flip_better: torch.Tensor) -> torch.Tensor:
    return torch.where(flip_better[:, None, None, None], flipped, plain)


@torch.no_grad()
def apply_rule(rule: str, prior, x_hat: torch.Tensor, x: torch.Tensor, centre) -> torch.Tensor:
    if rule in TWIN_RULES:
        return select_twins(x_hat, rule, prior, centre)
    if rule == "elbo_all":
        return elbo_all(prior, x_hat)
    n = len(x_hat)
    plain = centred(x_hat, torch.zeros(n, dtype=torch.bool), centre)
    flipped = centred(x_hat, torch.ones(n, dtype=torch.bool), centre)
    if rule == "centre_refit":
        return pick(plain, flipped, latent_refit_residual(prior, flipped) < latent_refit_residual(prior, plain))
    if rule == "centre_elbo_1px":
        cands = torch.cat([neighbours(plain), neighbours(flipped)], dim=1)  # (N, 18, C, H, W)
        scores = elbo(prior, cands.flatten(0, 1)).view(n, -1)
        return cands[torch.arange(n), scores.argmax(1)]
    if rule.startswith("centre_elbo_margin_"):  # the solver's flip unless the other's ELBO is higher by a margin
        margin = float(rule.rsplit("_", 1)[1])
        return pick(plain, flipped, elbo(prior, flipped) > elbo(prior, plain) + margin)
    if rule == "centre_oracle_flip":  # uses the ground truth: an oracle ceiling
        return pick(plain, flipped, psnr(flipped, x) > psnr(plain, x))
    raise ValueError(rule)


MARGINS = (5, 10, 20, 40, 80)
RULES = ("none", "elbo_all", "centre", "centre_elbo", "centre_recon", "centre_refit", "centre_elbo_1px",
         *[f"centre_elbo_margin_{m}" for m in MARGINS], "centre_oracle_flip")


def is_oracle_twin(x_sel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    al = find_alignment(x_sel, x)
    return (al.shift == 0).all(1) & ~al.flipped & (al.sign == 1)


def score(x_sel: torch.Tensor, x: torch.Tensor) -> dict:
    p = psnr(x_sel, x)
    (pm, pc), (sm, _) = mean_ci95(p.tolist()), mean_ci95(ssim(x_sel, x).tolist())
    return {"psnr_mean": pm, "psnr_ci95": pc, "ssim_mean": sm,
            "oracle_twin_fraction": float(is_oracle_twin(x_sel, x).float().mean()), "psnr_per_image": p.tolist()}


def exact_twin_recovery(rule: str, prior, x: torch.Tensor, centre, seed: int = 0) -> float:
    """Fraction of random exact twins (shift + flip) of ``x`` that ``rule`` maps back onto ``x``."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    al = FourierAlignment(shift=torch.stack([torch.randint(h, (n,), generator=g), torch.randint(w, (n,), generator=g)], 1),
                          flipped=torch.randint(2, (n,), generator=g).bool(), sign=torch.ones(n, dtype=torch.long))
    back = apply_rule(rule, prior, apply_alignment(x, al), x, centre)
    return float((back - x).flatten(1).abs().amax(1).lt(1e-5).float().mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--cache", default="outputs/benchmarks/fourier_twins")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"],
                        help="a rule is chosen only when val is among them")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior).eval().requires_grad_(False)
    train, _ = split_images("train", 10 ** 9)
    com = mass_centres(train)
    centre = (train.shape[-2] / 2, train.shape[-1] / 2)
    print(f"mass centres of {len(train)} training digits: rows {com[:, 0].min():.3f}..{com[:, 0].max():.3f}, "
          f"cols {com[:, 1].min():.3f}..{com[:, 1].max():.3f}; data centre used {centre}")
    out = {"prior": args.prior, "images": args.images, "centre": list(centre),
           "train_mass_centre_range": {"rows": [float(com[:, 0].min()), float(com[:, 0].max())],
                                       "cols": [float(com[:, 1].min()), float(com[:, 1].max())]}}
    for split in args.splits:
        rec = reconstruct(prior, args.prior, split, args.images, Path(args.cache))
        x, x_hat = rec["x"], rec["x_hat"]
        aligned = mean_ci95(psnr(apply_alignment(x_hat, find_alignment(x_hat, x)), x).tolist())
        rows = {}
        print(f"\n{split}: {len(x)} digits, {rec['method']}, aligned PSNR (oracle) {aligned[0]:.2f} ± {aligned[1]:.2f}")
        for rule in RULES:
            rows[rule] = score(apply_rule(rule, prior, x_hat, x, centre), x)
            rows[rule]["exact_twin_recovery"] = exact_twin_recovery(rule, prior, x, centre)
            r = rows[rule]
            print(f"  {rule:20s} PSNR {r['psnr_mean']:6.2f} ± {r['psnr_ci95']:4.2f}  SSIM {r['ssim_mean']:.3f}  "
                  f"oracle's twin {r['oracle_twin_fraction']:5.1%}  exact twins mapped back {r['exact_twin_recovery']:5.1%}",
                  flush=True)
        out[split] = {"method": rec["method"], "aligned_oracle_psnr_mean": aligned[0], "aligned_oracle_psnr_ci95": aligned[1],
                      "rules": rows}
    if "val" in out and "test" in out:
        candidates = [r for r in RULES if "oracle" not in r]
        chosen = max(candidates, key=lambda r: out["val"]["rules"][r]["psnr_mean"])
        test = out["test"]["rules"][chosen]
        out["chosen_on_val"] = chosen
        print(f"\nchosen on the validation split: {chosen}; test: raw {test['psnr_mean']:.2f} dB vs aligned "
              f"{out['test']['aligned_oracle_psnr_mean']:.2f} dB (oracle), oracle's twin kept on "
              f"{test['oracle_twin_fraction']:.1%}")
    save_results("fourier_twins" if len(args.splits) == 2 else f"fourier_twins_{'_'.join(args.splits)}", out)
    return out


if __name__ == "__main__":
    main()
