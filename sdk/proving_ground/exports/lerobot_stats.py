"""Per-feature statistics of a LeRobot v3.0 export (``meta/stats.json`` and the episodes'
``stats/<feature>/<stat>`` columns), as LeRobot's ``src/lerobot/datasets/compute_stats.py``
defines them: min, max, mean, std, count and the quantiles q01, q10, q50, q90, q99.

Numeric features: over every row of the episode. Camera features: per RGB channel, scaled to
[0, 1], shape (3, 1, 1), over up to 100 frames spread evenly through the episode and
scaled down to about 150 px (LeRobot's ``sample_indices`` / ``auto_downsample_height_width``
do the same in spirit). Differences, on purpose: quantiles here are exact (numpy's linear
method; for 8-bit pixels, from exact 256-bin counts), where LeRobot estimates them from
histograms. Training code normalizes with mean/std or min/max; both are exact either way.
"""

from __future__ import annotations

import math

import numpy as np

# compute_stats.py: DEFAULT_QUANTILES, keys "q01" ... "q99"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
# compute_stats.auto_downsample_height_width: images at least 300 px are subsampled to ~150.
_STATS_TARGET_PX, _STATS_DOWNSAMPLE_FROM_PX = 150, 300


def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over rows of (rows,) or (rows, *shape): each of shape (1,) or `shape`, float64
    (count: int64 (1,)). Quantiles are exact (numpy's linear method); LeRobot estimates
    them from histograms."""
    x = values.astype(np.float64)
    if x.ndim == 1:
        x = x[:, None]
    stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    for key, q in zip(QUANTILE_KEYS, np.quantile(x, QUANTILES, axis=0), strict=True):
        stats[key] = q
    return stats


def image_stats(samples: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel stats of sampled RGB frames (each (h, w, 3) uint8), scaled to [0, 1],
    shape (3, 1, 1) as LeRobot stores image stats; exact, from 256-bin counts."""
    counts = np.zeros((3, 256), dtype=np.int64)
    for image in samples:
        for c in range(3):
            counts[c] += np.bincount(image[..., c].reshape(-1), minlength=256)
    levels = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ levels / total
    std = np.sqrt(np.maximum(0.0, counts @ levels**2 / total - mean**2))
    nonzero = [np.flatnonzero(c) for c in counts]
    stats = {
        "min": np.array([levels[n[0]] for n in nonzero]),
        "max": np.array([levels[n[-1]] for n in nonzero]),
        "mean": mean,
        "std": std,
    }
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        stats[key] = np.array([_quantile_of_counts(c, q) for c in counts]) / 255.0
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([len(samples)], dtype=np.int64)
    return stats


def _quantile_of_counts(counts: np.ndarray, q: float) -> float:
    """numpy's linear-method quantile of the values 0..255 repeated `counts` times."""
    position = q * (counts.sum() - 1)
    below, frac = int(math.floor(position)), position - math.floor(position)
    cumulative = np.cumsum(counts)
    lo = int(np.searchsorted(cumulative, below, side="right"))
    hi = int(np.searchsorted(cumulative, below + 1, side="right")) if frac else lo
    return lo + frac * (min(hi, 255) - lo)


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """compute_stats.aggregate_feature_stats: count-weighted mean, pooled variance, min of
    mins, max of maxes; quantiles up to q50 take the minimum over episodes, above, the
    maximum (LeRobot's conservative rule, kept so that stats.json means what it means
    there)."""
    counts = np.stack([s["count"] for s in per_episode]).astype(np.float64)
    means = np.stack([s["mean"] for s in per_episode])
    variances = np.stack([s["std"] ** 2 for s in per_episode])
    while counts.ndim < means.ndim:
        counts = counts[..., None]
    total = counts.sum(axis=0)
    mean = (means * counts).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([sum(int(s["count"][0]) for s in per_episode)], dtype=np.int64),
    }
    for key in QUANTILE_KEYS:
        values = np.stack([s[key] for s in per_episode])
        out[key] = values.min(axis=0) if int(key[1:]) <= 50 else values.max(axis=0)
    return out


def stats_image_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) at which a camera frame is sampled for stats: unchanged below 300 px,
    else divided by the whole factor that brings the longer side near 150 px."""
    if max(height, width) < _STATS_DOWNSAMPLE_FROM_PX:
        return width, height
    factor = max(height, width) // _STATS_TARGET_PX
    return max(1, width // factor), max(1, height // factor)
