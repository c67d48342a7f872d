"""The 8 flips/rotations of an image (the dihedral group D4).

The training augmentation (numpy samplers) and the upscaler's geometric
self-ensemble both use them. Imports numpy only.
"""

import numpy as np


def dihedral(patch, k):
    """One of the 8 flips/rotations of a (..., H, W, C) array; k in [0, 8).

    k % 4 counter-clockwise quarter turns, then a left-right flip if k >= 4.
    """
    out = np.rot90(patch, k % 4, axes=(-3, -2))
    return np.flip(out, axis=-2) if k >= 4 else out


def undo_dihedral(patch, k):
    """The inverse of ``dihedral(patch, k)``."""
    out = np.flip(patch, axis=-2) if k >= 4 else patch
    return np.rot90(out, -(k % 4), axes=(-3, -2))


def dihedral_tables(patch_size):
    """Source rows and columns of the 8 flips/rotations of a P x P patch.

    Returns:
        int32 (8, P, P) arrays ``rows``, ``cols`` with
        ``dihedral(patch, k)[i, j] == patch[rows[k, i, j], cols[k, i, j]]``.
    """
    grid = np.indices((patch_size, patch_size)).astype(np.int32)
    rows = np.stack([dihedral(grid[0][..., None], k)[..., 0] for k in range(8)])
    cols = np.stack([dihedral(grid[1][..., None], k)[..., 0] for k in range(8)])
    return rows, cols
