"""Maps laid over the frames as pixels, for the overlays the ``explain`` command and the Attention page export:
the map coloured dark to bright and blended with the frames (:func:`overlay_frames`), and the exported form,
enlarged to a readable size with a colour bar that states the map's range (:func:`export_frames`)."""

from __future__ import annotations

import numpy as np

from ._base import heat_range

# a perceptually ordered dark-to-bright ramp (matplotlib's "inferno" at five stops), for the overlay colours
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


#: an exported overlay's frames are enlarged by a whole factor to at least this many pixels on their short side
#: (a map on a 224 px frame is too small to read in a video player)
EXPORT_MIN_SIDE = 448
#: width of the colour bar panel right of the exported frames, in pixels
COLOR_BAR_WIDTH = 128


def _ramp(scaled: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB of the dark-to-bright ramp, float."""
    stops = np.linspace(0, 1, len(_RAMP))
    return np.stack([np.interp(scaled, stops, _RAMP[:, c]) for c in range(3)], axis=-1)


def overlay_frames(frames: np.ndarray, heat: np.ndarray, *, opacity: float = 0.5, zmin: float | None = None,
                   zmax: float | None = None) -> np.ndarray:
    """``frames`` ``(T, H, W, 3)`` uint8 blended with ``heat`` ``(T, H, W)`` (scaled to [0, 1] from ``zmin`` to
    ``zmax``, by default over the whole clip, coloured dark to bright) → ``(T, H, W, 3)`` uint8."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    lo = heat.min() if zmin is None else zmin
    hi = heat.max() if zmax is None else zmax
    scaled = np.clip((heat - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(heat)
    return np.clip((1 - opacity) * frames + opacity * _ramp(scaled), 0, 255).round().astype(np.uint8)


def export_frames(frames: np.ndarray, heat: np.ndarray, *, title: str,
                  min_side: int = EXPORT_MIN_SIDE) -> tuple[np.ndarray, str]:
    """The overlay as the MP4/GIF exports show it: ``frames`` ``(T, H, W, 3)`` uint8 and ``heat`` ``(T, H, W)``
    enlarged by a whole factor to at least ``min_side`` pixels on the short side (frames bicubic, the map
    bilinear), blended as :func:`overlay_frames`, with a colour bar on the right that states the map's range:
    ``title`` on top, the highest value at the bar's bright top, the lowest at its dark bottom. A map that is
    (nearly) constant is drawn in one colour and says so, as the app's colour bars do
    (:func:`videoattn_core.figures.heat_range`). Returns the frames ``(T, H′, W′ + COLOR_BAR_WIDTH, 3)`` uint8 and
    the range as one line of text (the MP4 carries it as its comment)."""
    from PIL import Image, ImageDraw, ImageFont

    heat = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    t, h, w, _ = frames.shape
    factor = max(1, -(-min_side // min(h, w)))
    size = (w * factor, h * factor)
    big_frames = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize(size, Image.BICUBIC))
                           for f in frames])
    big_heat = np.stack([np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
                         for m in heat])
    shown = heat_range(heat, title)
    lo, hi = float(heat.min()), float(heat.max())
    if shown.flat:
        mean = float(heat.mean())
        spread = f"{(hi - lo) / abs(mean):.0e} of the mean" if hi > lo else "no spread"
        text, top, bottom = f"{title}: nearly constant, {mean:.4g} ({spread})", "", ""
    else:
        text, top, bottom = f"{title}: {lo:.4g} (dark) to {hi:.4g} (bright)", f"{hi:.3g}", f"{lo:.3g}"
    blended = overlay_frames(big_frames, big_heat, zmin=shown.zmin, zmax=shown.zmax)

    height = size[1]
    panel = Image.new("RGB", (COLOR_BAR_WIDTH, height), "white")
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=max(11, min(16, height // 28)))
    pad = max(24, height // 12)
    bar_top, bar_bottom = pad + 8, height - pad
    ramp = _ramp(np.linspace(1, 0, bar_bottom - bar_top))  # bright at the top
    if shown.flat:  # one colour, as the frames show it
        ramp[:] = _ramp(np.array([(float(heat.mean()) - shown.zmin) / (shown.zmax - shown.zmin)]))
    bar = np.repeat(ramp.round().astype(np.uint8)[:, None], 20, axis=1)
    panel.paste(Image.fromarray(bar), (10, bar_top))
    draw.text((8, 4), title, fill="black", font=font)
    draw.text((36, bar_top), top, fill="black", font=font)
    draw.text((36, bar_bottom), bottom, fill="black", font=font, anchor="ls")
    if shown.flat:  # no range to state: the one value, and that the map is (nearly) constant
        draw.text((36, (bar_top + bar_bottom) // 2), f"{float(heat.mean()):.4g}", fill="black", font=font,
                  anchor="lm")
        draw.text((36, (bar_top + bar_bottom) // 2 + font.size + 4), "nearly\nconstant", fill="black", font=font,
                  anchor="la")
    panel = np.broadcast_to(np.asarray(panel), (t, height, COLOR_BAR_WIDTH, 3))
    return np.concatenate([blended, panel], axis=2), text
