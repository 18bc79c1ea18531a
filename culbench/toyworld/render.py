"""ToyWorld renderer: the concept space, scenes and their images.

A scene is one coloured, patterned shape (or a named character: a fixed shape,
colour and pattern plus a distinctive mark) at one of three horizontal positions
on a dark or light background. Images are rendered with numpy on a supersampled
grid and box-downsampled, so 32x32 renders are antialiased yet cheap.

All geometry is specified in units of a 32 px canvas and scaled by ``size / 32``.
Captions, prompts, scene sampling and datasets live in ``culbench.toyworld.data``
(which imports this module, never the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bump whenever images for the same seed change (cached datasets are keyed on it).
# 2: added the arrow, house, bolt and tree objects.
# 3: "dotted" is a solid fill with contrasting dots (it was dots plus an outline, which on
#    thin shapes left one or two dots and was confused with "outlined").
# 4: dots are ~3 px on a 6 px grid (were ~2 px on a 4 px grid, the stripes' period): the
#    base model drew 2 px dots merged into bands and dotted was read as striped (P0 0.86).
RENDER_VERSION = 4

OBJECTS: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart",
    "cross", "ring", "moon", "diamond", "hexagon",
    # Added in RENDER_VERSION 2; appended so that earlier indices are unchanged.
    "arrow", "house", "bolt", "tree",
)
# Fixed, well separated RGB values; red/orange/pink/brown are deliberately near each other.
_COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 220, 40),
    "green": (40, 170, 60), "blue": (40, 90, 230), "purple": (140, 50, 200),
    "pink": (245, 120, 190), "brown": (130, 80, 35),
}
COLOURS: tuple[str, ...] = tuple(_COLOUR_RGB)
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checkered", "outlined")
_BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {"dark": (28, 28, 28), "light": (215, 215, 215)}
BACKGROUNDS: tuple[str, ...] = tuple(_BACKGROUND_RGB)
# Shape centre x in 32 px units. Shapes reach at most 0.95 half-sizes sideways, so with
# half-size 8.75, +8 % scale and +1 px offset the outermost pixel columns stay background.
_POSITION_X: dict[str, float] = {"left": 11.0, "center": 16.0, "right": 21.0}
POSITIONS: tuple[str, ...] = tuple(_POSITION_X)
MARKS: tuple[str, ...] = ("eyes", "mouth", "hat", "sash", "antennae", "spot")

# Related concepts a good unlearning method should leave intact while erasing a neighbour.
CONFUSABLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "object": (("star", "cross", "diamond"), ("circle", "ring", "hexagon", "moon")),
    "colour": (("red", "orange", "pink", "brown"),),
}


@dataclass(frozen=True)
class Character:
    """A named composite concept (stand-in for IP or a celebrity).

    Attributes:
        shape: Base object name from OBJECTS.
        colour: Base colour name from COLOURS.
        pattern: Base pattern name from PATTERNS.
        mark: Distinctive mark name from MARKS drawn on top of the base shape.
    """

    shape: str
    colour: str
    pattern: str
    mark: str


CHARACTER_SPECS: dict[str, Character] = {
    "zorb": Character("circle", "green", "solid", "eyes"),
    "quillo": Character("star", "yellow", "solid", "mouth"),
    "mipsy": Character("heart", "pink", "dotted", "hat"),
    "tangle": Character("square", "purple", "striped", "sash"),
    "bobo": Character("hexagon", "brown", "checkered", "antennae"),
    "kix": Character("diamond", "blue", "solid", "spot"),
}
CHARACTERS: tuple[str, ...] = tuple(CHARACTER_SPECS)


@dataclass(frozen=True)
class Scene:
    """One ToyWorld scene; all fields are names from the module-level tuples.

    Attributes:
        object: Shape name. For characters this must be the character's shape.
        colour: Colour name. For characters this must be the character's colour.
        pattern: Pattern name. For characters this must be the character's pattern.
        background: Background tone name.
        position: Horizontal position name.
        character: Character name, or None for a plain object scene.
    """

    object: str
    colour: str
    pattern: str
    background: str
    position: str
    character: str | None = None

    def __post_init__(self) -> None:
        for field, allowed in (("object", OBJECTS), ("colour", COLOURS), ("pattern", PATTERNS),
                               ("background", BACKGROUNDS), ("position", POSITIONS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"unknown {field} {getattr(self, field)!r}; expected {allowed}")
        if self.character is not None:
            spec = CHARACTER_SPECS.get(self.character)
            if spec is None or (self.object, self.colour, self.pattern) != (
                    spec.shape, spec.colour, spec.pattern):
                raise ValueError(f"bad character scene {self}; specs: {CHARACTER_SPECS}")

    @classmethod
    def of_character(cls, name: str, background: str, position: str) -> Scene:
        """Builds a character scene with the character's fixed shape, colour and pattern."""
        spec = CHARACTER_SPECS[name]
        return cls(spec.shape, spec.colour, spec.pattern, background, position, name)

    def labels(self) -> dict[str, str]:
        """Returns all attributes as string labels (character is "none" when absent).

        ``culbench.toyworld.data.scene_from_labels`` is the inverse.
        """
        return {
            "object": self.object, "colour": self.colour, "pattern": self.pattern,
            "background": self.background, "position": self.position,
            "character": self.character or "none",
        }


# ----------------------------------------------------------------------------- geometry

_SS = 4  # supersampling factor; 4x4 subpixels per output pixel is enough antialiasing.
_CY = 17.5  # shape centre y; low enough that hats/antennae (marks reach v=-1.53) fit.
_HALF = 8.75  # shape half-size in 32 px units (shapes span ~16-17 px).


def _polygon(u: np.ndarray, v: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over the grid."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
        if y0 == y1:
            continue
        crosses = (v < y0) != (v < y1)
        x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < x_at)
    return inside


def _star_points(outer: float = 1.0, inner: float = 0.5) -> np.ndarray:
    ang = -np.pi / 2 + np.arange(10) * np.pi / 5  # first point straight up (image y is down)
    rad = np.where(np.arange(10) % 2 == 0, outer, inner)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    pts[:, 1] += (1.0 - outer * np.cos(np.pi / 5)) / 2  # centre the star vertically
    return pts


_STAR = _star_points()
# Right-pointing arrow: thick shaft plus a triangular head.
_ARROW = np.array([[-0.95, -0.4], [-0.05, -0.4], [-0.05, -0.92], [0.95, 0.0],
                   [-0.05, 0.92], [-0.05, 0.4], [-0.95, 0.4]])
# Lightning bolt: the classic two-stroke zig-zag, top right to bottom left.
_BOLT = np.array([[-0.25, -0.95], [0.85, -0.95], [0.35, -0.15], [0.92, -0.15],
                  [-0.5, 0.95], [-0.25, 0.2], [-0.85, 0.2]])


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a shape in local coordinates (unit half-size, v pointing down)."""
    if name == "circle":
        return u * u + v * v <= 0.95**2
    if name == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if name == "triangle":  # apex up, base at v=0.8
        return (v <= 0.8) & (v >= -0.92 + 1.81 * np.abs(u))
    if name == "star":
        return _polygon(u, v, _STAR)
    if name == "heart":  # classic implicit heart curve, y up
        x, y = u * 1.22, -v * 1.18 + 0.12
        return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0
    if name == "cross":  # plus sign
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 0.95**2) & (r2 >= 0.5**2)
    if name == "moon":  # crescent opening to the upper right
        return (u * u + v * v <= 0.95**2) & ((u - 0.45) ** 2 + (v + 0.28) ** 2 >= 0.78**2)
    if name == "diamond":
        return np.abs(u) / 0.85 + np.abs(v) <= 1.0
    if name == "hexagon":  # flat top and bottom, pointed left/right
        a = 0.95 * np.sqrt(3) / 2
        return (np.abs(v) <= a) & (np.sqrt(3) / 2 * np.abs(u) + 0.5 * np.abs(v) <= a)
    if name == "arrow":
        return _polygon(u, v, _ARROW)
    if name == "house":  # square body, overhanging triangular roof, door cut out
        body = (np.abs(u) <= 0.68) & (v >= -0.15) & (v <= 0.9)
        roof = (v <= -0.05) & (v >= -0.95 + 0.95 * np.abs(u))
        door = (np.abs(u) <= 0.2) & (v >= 0.38)
        return (body | roof) & ~door
    if name == "bolt":
        return _polygon(u, v, _BOLT)
    if name == "tree":  # pine: two stacked triangular tiers on a rectangular trunk
        top = (v <= -0.15) & (v >= -0.97 + np.abs(u))
        low = (v <= 0.4) & (v >= -0.5 + 0.95 * np.abs(u))
        trunk = (np.abs(u) <= 0.18) & (v >= 0.35) & (v <= 0.95)
        return top | low | trunk
    raise ValueError(f"unknown object {name!r}")


def _pattern_mask(name: str, px: np.ndarray, py: np.ndarray, dot_shift: float) -> np.ndarray | None:
    """Pattern "ink" mask (None = solid); px/py in 32 px units from the pattern anchor.

    dot_shift moves dot centres onto pixel centres when dots are an odd number of px wide.
    """
    if name == "striped":  # horizontal bands, 2 px on / 2 px off
        return np.floor(py / 2.0) % 2 == 0
    if name == "dotted":  # ~3 px dots on a 6 px grid, one at the centre so that even small
        # interiors (star, cross) show a dot. The period differs from the stripes' (4 px) and
        # the checkers' (8 px), so dots never merge into either. Drawn over a solid fill.
        qx, qy = px + 3.0 - dot_shift, py + 3.0 - dot_shift
        return ((qx % 6.0) - 3.0) ** 2 + ((qy % 6.0) - 3.0) ** 2 <= 1.5**2
    if name == "checkered":  # 4 px checkers
        return (np.floor(px / 4.0) + np.floor(py / 4.0)) % 2 == 0
    if name == "outlined":
        return np.zeros(np.broadcast_shapes(px.shape, py.shape), dtype=bool)
    return None


def _dot_rgb(colour: str) -> tuple[float, float, float]:
    """Dot colour for "dotted": black on light fills, white on dark ones (from the base
    colour, so jitter never flips it)."""
    r, g, b = _COLOUR_RGB[colour]
    return _BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else _WHITE


def _erode(mask: np.ndarray, r: int, outside: bool = False) -> np.ndarray:
    """Erodes by an approximate disc of radius r (alternating 4- and 8-neighbour steps).

    A plain square window would make outlines ~1.4x thicker along diagonals, which
    swallows the interior of stars and diamonds.
    """
    m = mask
    for i in range(r):
        p = np.pad(m, 1, constant_values=outside)
        m = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        if i % 2:
            m = m & p[:-2, :-2] & p[:-2, 2:] & p[2:, :-2] & p[2:, 2:]
    return m


def _segment(u: np.ndarray, v: np.ndarray, a: tuple[float, float],
             b: tuple[float, float], width: float) -> np.ndarray:
    """Thick line segment from a to b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (u - ax - t * dx) ** 2 + (v - ay - t * dy) ** 2 <= (width / 2) ** 2


def _disc(u: np.ndarray, v: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return (u - cx) ** 2 + (v - cy) ** 2 <= r * r


_WHITE, _BLACK = (255.0, 255.0, 255.0), (0.0, 0.0, 0.0)


def _mark_layers(name: str, u: np.ndarray, v: np.ndarray, shape: np.ndarray,
                 border: int) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """Mark layers (mask, rgb) drawn over the shape, in order.

    Marks that may lie over the background are white with a black border so they
    stand out on both the dark and the light background.
    """

    def bordered(m: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
        return [(~_erode(~m, border, outside=True), _BLACK), (m, _WHITE)]  # dilate

    if name == "eyes":
        whites = _disc(u, v, -0.38, -0.15, 0.27) | _disc(u, v, 0.38, -0.15, 0.27)
        pupils = _disc(u, v, -0.33, -0.08, 0.13) | _disc(u, v, 0.43, -0.08, 0.13)
        return [(whites, _WHITE), (pupils, _BLACK)]
    if name == "mouth":  # wide black grin under two small black eyes
        grin = _segment(u, v, (-0.3, 0.2), (0.3, 0.2), 0.26)
        eyes = _disc(u, v, -0.17, -0.18, 0.12) | _disc(u, v, 0.17, -0.18, 0.12)
        return [(grin | eyes, _BLACK)]
    if name == "hat":  # party hat sitting on top of the shape
        hat = _polygon(u, v, np.array([[0.0, -1.5], [0.45, -0.8], [-0.45, -0.8]]))
        return bordered(hat)
    if name == "sash":  # white diagonal band clipped to the body
        return [(shape & (np.abs(u + v) <= 0.26), _WHITE)]
    if name == "antennae":
        stalks = (_segment(u, v, (-0.3, -0.75), (-0.55, -1.25), 0.13)
                  | _segment(u, v, (0.3, -0.75), (0.55, -1.25), 0.13))
        knobs = _disc(u, v, -0.55, -1.3, 0.18) | _disc(u, v, 0.55, -1.3, 0.18)
        return bordered(stalks | knobs)
    if name == "spot":  # big bullseye in the centre
        return [*bordered(_disc(u, v, 0.0, 0.0, 0.34)), (_disc(u, v, 0.0, 0.0, 0.13), _BLACK)]
    raise ValueError(f"unknown mark {name!r}")


def render(scene: Scene, size: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """Renders a scene to an RGB image.

    Args:
        scene: The scene to draw.
        size: Output side length in pixels (32 is canonical; 16 is supported).
        rng: Source of small jitter (±1 px offset, ±8 % scale, ±8/255 colour shift);
            None gives the canonical, jitter-free render.

    Returns:
        uint8 array of shape (size, size, 3).
    """
    k = size / 32.0
    fill = np.array(_COLOUR_RGB[scene.colour], dtype=np.float64)
    bg = np.array(_BACKGROUND_RGB[scene.background], dtype=np.float64)
    off_x = off_y = 0.0
    scale = 1.0
    if rng is not None:
        off_x, off_y = rng.uniform(-1.0, 1.0, size=2)
        scale = 1.0 + rng.uniform(-0.08, 0.08)
        # Per-image (not per-pixel) colour shifts keep patterns crisp and PNGs small.
        fill = fill + rng.integers(-8, 9, size=3)
        bg = bg + rng.integers(-8, 9, size=3)
    cx, cy = (_POSITION_X[scene.position] + off_x) * k, (_CY + off_y) * k
    half = _HALF * scale * k

    # Subpixel centres in output-pixel units; (1, n) and (n, 1) broadcast to the grid.
    coords = (np.arange(size * _SS) + 0.5) / _SS
    xs, ys = coords[None, :], coords[:, None]
    u, v = (xs - cx) / half, (ys - cy) / half
    shape = _shape_mask(scene.object, u, v)

    # Anchor patterns at the shape centre rounded to whole pixels: a fractional anchor
    # (jitter, or 16 px renders) would blur 1-2 px stripes into a flat tint.
    ax, ay = round(cx), round(cy)
    dot_shift = 0.5 / k  # 3 px dots (odd) centred on pixel centres
    pattern = _pattern_mask(scene.pattern, (xs - ax) / k, (ys - ay) / k, dot_shift)
    dots = None
    if pattern is None:
        body = shape
    elif scene.pattern == "dotted":
        # Solid body with contrasting dots kept 1 px inside the edge: the silhouette stays
        # clean and even thin shapes (bolt, cross, star) read as filled-with-dots, never as
        # an outline.
        body = shape
        dots = _erode(shape, max(1, round(k * _SS))) & pattern
    else:
        # Patterned shapes keep an outline so the silhouette stays readable.
        # Band of 1.25 px at 32 px (never under 1 px): thick enough to survive
        # downsampling, thin enough to leave room for the pattern inside.
        r = max(1, round(max(1.0, 1.25 * k) * _SS))
        outline = shape & ~_erode(shape, r)
        body = outline | (shape & pattern)

    layers = [(body, tuple(fill))]
    if dots is not None:
        layers.append((dots, _dot_rgb(scene.colour)))
    if scene.character is not None:
        mark = CHARACTER_SPECS[scene.character].mark
        layers += _mark_layers(mark, u, v, shape, border=max(1, round(_SS * k)))

    img = np.broadcast_to(bg, (size, size, 3)).copy()
    for mask, rgb in layers:
        alpha = np.broadcast_to(mask, (size * _SS, size * _SS))
        alpha = alpha.reshape(size, _SS, size, _SS).mean(axis=(1, 3))[..., None]
        img += alpha * (np.asarray(rgb) - img)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
