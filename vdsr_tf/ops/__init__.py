"""Array maths with no model in it: MATLAB bicubic, colour, flips, tiles, a tile's pipeline.

Written against an array namespace (``xp``) where numpy and TensorFlow run the
same code. Imports nothing from the other rooms (BUILD.md, "Layout").
"""
