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
