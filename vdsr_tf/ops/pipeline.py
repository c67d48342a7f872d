"""The work around the network, written once for numpy and for TF graphs.

An image goes through three steps, each a function here taking the array
namespace ``xp`` (numpy, or the ``tf.experimental.numpy``-like namespace of
``vdsr_tf.export.saved_model``):

1. ``split``: (h, w, c) image -> float32 planes in [0, 1]: the network's
   plane (grey, or MATLAB Y of RGB) and the planes that are only enlarged
   (Cb, Cr, alpha).
2. ``upscale_tile``: for one tile of the output, MATLAB-bicubic enlarge the
   network's plane over the tile plus its context (``network_window``), run
   the network, keep the tile; enlarge the other planes over the tile; back
   to the image's colour space and to uint8 (or float in [0, 1])
   (``finish_tile``). A caller that runs the network on several images'
   windows at once (video frames) calls the two halves itself.
3. The caller assembles the tiles (a Python loop in ``vdsr_tf.Upscaler``, a
   ``tf.while_loop`` in the SavedModel), both over ``vdsr_tf.ops.tiling.tiles``'
   plan.

So the upscaler, the SavedModel (TF Serving) and the LiteRT path (an
``Upscaler`` with a LiteRT predictor, no Keras) share output size, colour and
rounding by construction; only the float accumulation order of the
convolutions and the taps differs between engines. Memory is bounded by the
tile, not by the output. Imports numpy only.
"""

from vdsr_tf.ops.colour import rgb_from_float_ycbcr, ycbcr_from_float_rgb
from vdsr_tf.ops.imresize import enlarge_window, quantise


def split(image, channels, xp, peak=255.0):
    """An image -> the network's plane, the other planes, their layout.

    Args:
        image: (h, w, channels): 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA;
            uint8, or any type with ``peak`` as white.
        channels: the static channel count (1..4).
        xp: the array namespace.
        peak: the value of white: 255 for uint8, 1 for float in [0, 1].

    Returns:
        ``(net, rest)``: float32 (h, w, 1) in [0, 1], the grey or MATLAB Y
        plane the network refines; float32 (h, w, r) with r = 0..3, Cb and Cr
        (RGB) then alpha (if any), or None when r = 0.
    """
    x = xp.asarray(image, dtype="float32") / peak
    has_alpha = channels in (2, 4)
    colour = x[..., :3] if channels >= 3 else x[..., :1]
    alpha = [x[..., -1:]] if has_alpha else []
    if channels >= 3:
        ycc = ycbcr_from_float_rgb(colour, xp)
        net, rest = ycc[..., :1], [ycc[..., 1:]] + alpha
    else:
        net, rest = colour, alpha
    return net, (xp.concatenate(rest, axis=-1) if rest else None)


def merge(sr, rest, channels, xp, to_uint8=True):
    """SR planes -> image: the inverse of ``split`` on enlarged planes.

    Args:
        sr: float32 (H, W, 1), the network's output plane (not clipped).
        rest: float32 (H, W, r), the enlarged other planes, or None.
        channels: the image's channel count (1..4).
        to_uint8: True: uint8 (``quantise``); False: float32 clipped to [0, 1].

    Returns:
        uint8 or float32 (H, W, channels).
    """

    def finish(x):
        return quantise(x, xp) if to_uint8 else xp.clip(x, 0.0, 1.0)

    if channels >= 3:
        colour = finish(rgb_from_float_ycbcr(xp.concatenate([sr, rest[..., :2]], axis=-1), xp))
    else:
        colour = finish(sr)
    if channels in (2, 4):
        return xp.concatenate([colour, finish(rest[..., -1:])], axis=-1)
    return colour


def upscale_tile(net, rest, channels, out_hw, tile, src, network, xp, cond=None, to_uint8=True):
    """One output tile of the super-resolved image: ``network_window``, the
    network, then ``finish_tile``.

    Args:
        net, rest: ``split``'s planes of the input image.
        channels: the image's channel count (1..4).
        out_hw: (H, W), the output size.
        tile: ``(top, left, bottom, right)`` of the tile in output pixels.
        src: ``(top, left, bottom, right)`` of the window the network sees
            (the tile plus its context, ``vdsr_tf.ops.tiling.tile_window``).
        network: callable, float32 (h, w, 1) bicubic plane in about [0, 1]
            -> float32 (h, w, 1) SR plane.
        xp: the array namespace; ``cond`` for graph tensors (``tf.cond``).
        to_uint8: as ``merge``.

    Returns:
        uint8 (or float32) (bottom - top, right - left, channels).
    """
    sr = network(network_window(net, out_hw, src, xp, cond))
    return finish_tile(sr, rest, channels, out_hw, tile, src, xp, cond, to_uint8)


def network_window(net, out_hw, src, xp, cond=None):
    """The network's input for one tile: ``net`` MATLAB-bicubic enlarged over
    the window ``src`` = ``(top, left, bottom, right)`` in output pixels;
    float32 (bottom - top, right - left, 1)."""
    s_top, s_left, s_bottom, s_right = src
    return enlarge_window(
        net, out_hw, (s_top, s_bottom - s_top), (s_left, s_right - s_left), xp, cond
    )


def finish_tile(sr, rest, channels, out_hw, tile, src, xp, cond=None, to_uint8=True):
    """The network's output over the window ``src`` -> the image's ``tile``:
    cropped, with the other planes enlarged over the tile and merged."""
    top, left, bottom, right = tile
    sr = sr[top - src[0] : bottom - src[0], left - src[1] : right - src[1]]
    if rest is not None:
        rest = enlarge_window(rest, out_hw, (top, bottom - top), (left, right - left), xp, cond)
    return merge(sr, rest, channels, xp, to_uint8)
