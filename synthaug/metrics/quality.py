"""Sample quality in a feature space: FID, KID, precision/recall, density/coverage.

Every function takes two feature matrices, ``real`` ``[N, D]`` and ``fake`` ``[M, D]`` (numpy or
torch, any float dtype), and works in float64. Nothing is downloaded: the features come from
:mod:`synthaug.metrics.features`.

- FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to the two sets. Biased
  upwards at small N; needs more samples than feature dimensions, so it is reported only then.
- KID (Bińkowski et al. 2018): unbiased MMD² with the kernel ``(xᵀy / D + 1)³``, averaged over
  random subsets; its standard deviation across subsets is the error bar.
- Precision and recall (Kynkäänniemi et al. 2019): a sample's distance to its ``k``-th nearest
  neighbour in its own set is the radius of its ball; precision is the share of generated
  samples inside some real ball, recall the share of real samples inside some generated ball.
- Density and coverage (Naeem et al. 2020): density counts how many real balls hold each
  generated sample (divided by ``k``); coverage is the share of real balls holding any generated
  sample. Both use only real balls, so generated outliers cannot inflate them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import torch

__all__ = ["as_features", "fid", "kid", "knn_radii", "nearest", "precision_recall_density_coverage",
           "quality_metrics"]

#: Entries per block of a pairwise-distance matrix (256 MiB of float64), so large sets never
#: need the whole N x M matrix at once.
_BLOCK_ENTRIES = 2**25


def as_features(x) -> np.ndarray:
    """Features as a float64 ``[N, D]`` array."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return arr.reshape(len(arr), -1).astype(np.float64)


def fid(real, fake, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to ``real`` and ``fake``.

    ``sqrtm`` of the covariance product takes its real part (tiny imaginary parts are numerical
    noise); when the product is singular or the root not finite, ``eps·I`` is added to both
    covariances first.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
        >>> fid(a, b) < 0.05, abs(fid(a, b + 1) - 4.0) < 0.2  # the means differ by 1 in each of 4 dims
        (True, True)
    """
    real, fake = as_features(real), as_features(fake)
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    covmean = _sqrtm_real(s1 @ s2, strict=True)
    if covmean is None:
        offset = np.eye(len(s1)) * eps
        covmean = _sqrtm_real((s1 + offset) @ (s2 + offset), strict=False)
        if covmean is None:
            return float("nan")
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def _sqrtm_real(matrix: np.ndarray, strict: bool) -> np.ndarray | None:
    """The real part of the matrix square root; None when it is not finite or, if ``strict``,
    when scipy finds the matrix singular (its warning becomes the signal to add ``eps·I``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error" if strict else "ignore", scipy.linalg.LinAlgWarning)
        try:
            root = scipy.linalg.sqrtm(matrix)
        except (scipy.linalg.LinAlgWarning, np.linalg.LinAlgError, ValueError):
            return None
    if not np.isfinite(root).all():
        return None
    return root.real


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: ``(mean, std)`` of the unbiased MMD² over ``subsets`` random subsets.

    Each subset draws ``m = min(subset_size, N // 2, M // 2)`` rows (without replacement) from
    each set. Capping ``m`` at half of each set keeps the subsets different from one another, so
    their spread measures how much the estimate moves with the sample: the std is the standard
    error of a size-``m`` estimate, a conservative error bar for the mean.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, std = kid(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), subsets=20)
        >>> abs(mean) < 3 * std
        True
    """
    real, fake = as_features(real), as_features(fake)
    m = min(subset_size, len(real) // 2, len(fake) // 2)
    if m < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    dim = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = (_cubic(a @ b.T / dim + 1) for a, b in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    values = np.asarray(values)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def _cubic(k: np.ndarray) -> np.ndarray:
    return k * k * k  # faster than k ** 3, which goes through pow()


def _pairwise(a: torch.Tensor, b: torch.Tensor):
    """Blocks ``(start, distances[block, len(b)])`` of the Euclidean distance matrix."""
    rows = max(1, _BLOCK_ENTRIES // max(1, len(b)))
    for start in range(0, len(a), rows):
        yield start, torch.cdist(a[start:start + rows], b)


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest other row (``inf`` when there are not ``k``)."""
    t = torch.from_numpy(as_features(x))
    if len(t) <= k:
        return np.full(len(t), np.inf)
    radii = torch.empty(len(t), dtype=torch.float64)
    for start, d in _pairwise(t, t):
        # The k+1 smallest include the row itself at distance 0.
        radii[start:start + len(d)] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii.numpy()


def nearest(x, y) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``x``: the distance to its nearest row of ``y``, and that row's index."""
    a, b = torch.from_numpy(as_features(x)), torch.from_numpy(as_features(y))
    dist, index = torch.empty(len(a), dtype=torch.float64), torch.empty(len(a), dtype=torch.int64)
    for start, d in _pairwise(a, b):
        best = d.min(dim=1)
        dist[start:start + len(d)], index[start:start + len(d)] = best.values, best.indices
    return dist.numpy(), index.numpy()


def _inside_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point: how many balls ``(centres[i], radii[i])`` contain it."""
    p, c = torch.from_numpy(as_features(points)), torch.from_numpy(as_features(centres))
    r = torch.from_numpy(radii)
    counts = torch.empty(len(p), dtype=torch.int64)
    for start, d in _pairwise(p, c):
        counts[start:start + len(d)] = (d <= r[None, :]).sum(dim=1)
    return counts.numpy()


def precision_recall_density_coverage(real, fake, k: int = 3) -> dict[str, float]:
    """Kynkäänniemi precision/recall and Naeem density/coverage with ``k``-NN balls.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> real = rng.normal(size=(500, 2))
        >>> half = real[real[:, 0] > 0] + 0.01  # generated samples cover only one half
        >>> m = precision_recall_density_coverage(real, half)
        >>> m["precision"] > 0.95, m["recall"] < 0.7, m["coverage"] < 0.7
        (True, True, True)
    """
    real, fake = as_features(real), as_features(fake)
    if len(real) <= k or len(fake) <= k:
        return {"precision": float("nan"), "recall": float("nan"), "density": float("nan"),
                "coverage": float("nan")}
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    in_real = _inside_counts(fake, real, real_radii)  # per generated sample: real balls holding it
    in_fake = _inside_counts(real, fake, fake_radii)  # per real sample: generated balls holding it
    nearest_fake, _ = nearest(real, fake)
    return {
        "precision": float((in_real > 0).mean()),
        "recall": float((in_fake > 0).mean()),
        "density": float(in_real.sum() / (k * len(fake))),
        "coverage": float((nearest_fake <= real_radii).mean()),
    }


def quality_metrics(real, fake, k: int = 3, kid_subsets: int = 100, kid_subset_size: int = 1000,
                    seed: int = 0) -> dict[str, float | int | None]:
    """All of the above for one pair of sets. FID is ``None`` when either set has no more
    samples than feature dimensions (its covariance would be singular and the value meaningless).
    """
    real, fake = as_features(real), as_features(fake)
    dim = real.shape[1]
    kid_mean, kid_std = kid(real, fake, kid_subsets, kid_subset_size, seed)
    enough = min(len(real), len(fake)) > dim
    return {
        "n_real": len(real), "n_generated": len(fake),
        "fid": _finite(fid(real, fake)) if enough else None,
        "kid": _finite(kid_mean), "kid_std": _finite(kid_std),
        **{key: _finite(v) for key, v in precision_recall_density_coverage(real, fake, k).items()},
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN: a value that could not be computed is ``None``."""
    return None if value is None or not math.isfinite(value) else float(value)
