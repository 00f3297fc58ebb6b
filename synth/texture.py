"""Procedural UV skin albedo: one texture per identity, painted per texel.

Every texel knows the template surface point it shows (`synth.atlas`), so
facial features are painted as functions of 3D position relative to a few
landmarks found on the template (eye centres, mouth line, crown), scaled by
the half inter-eye distance `unit`. The texture is attached to the UVs, so
identity shape morphs and AU deformations carry it along.

Layers, in linear RGB: skin tone (synth.face_style), low-frequency
mottling, blush over cheeks and nose, darker eye sockets, beard shadow
(some men), lips with a dark mouth line, brows, lash line, optional short
scalp hair, fine pore noise; eyes get sclera, iris and pupil; teeth and
tongue their own colours.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synth import atlas as atlas_lib
from synth import records
from synth.face_style import (
  PART_ROUGHNESS,
  PART_SRGB,
  Style,
  linear_to_srgb,
  sample_style,
  srgb_to_linear,
)


@dataclasses.dataclass(frozen=True)
class Landmarks:
  """Template landmarks (metres, face +z, y up)."""

  eyes: np.ndarray  # (2, 3) eyeball centres, right (x<0) then left
  eye_radius: float
  mouth: np.ndarray  # (3,) mouth centre on the lip line, at the lip front
  crown: float  # highest y of the skin
  unit: float  # half the distance between the eye centres


def find_landmarks(head) -> Landmarks:
  """Finds the landmarks from the head's parts (eyes, teeth) and skin."""
  v = np.asarray(head.vertices, np.float64)
  skin = v[np.asarray(head.parts.get("skin", np.ones(len(v), bool)))]
  eyes_mask = head.parts.get("eyes")
  if eyes_mask is not None and np.any(eyes_mask):
    e = v[np.asarray(eyes_mask)]
    eyes = np.stack([e[e[:, 0] < 0].mean(0), e[e[:, 0] >= 0].mean(0)])
    radius = float(np.ptp(e[e[:, 0] >= 0][:, 1])) / 2
  else:  # proportions of an average adult head
    lo, hi = skin.min(0), skin.max(0)
    y = lo[1] + 0.58 * (hi[1] - lo[1])
    x = 0.17 * (hi[0] - lo[0])
    z = hi[2] - 0.25 * (hi[0] - lo[0])
    eyes = np.array([[-x, y, z], [x, y, z]])
    radius = 0.012
  unit = float(eyes[1, 0] - eyes[0, 0]) / 2
  teeth = head.parts.get("teeth")
  if teeth is not None and np.any(teeth):
    t = v[np.asarray(teeth)]
    mouth_y = (t[:, 1].min() + t[:, 1].max()) / 2
  else:
    mouth_y = eyes[:, 1].mean() - 2.15 * unit
  near = skin[
    (np.abs(skin[:, 0]) < 0.2 * unit)
    & (np.abs(skin[:, 1] - mouth_y) < 0.4 * unit)
  ]
  mouth_z = near[:, 2].max() if len(near) else eyes[:, 2].mean() + unit
  return Landmarks(
    eyes.astype(np.float32),
    radius,
    np.array([0.0, mouth_y, mouth_z], np.float32),
    float(skin[:, 1].max()),
    unit,
  )


class NoiseBank:
  """Smooth random fields on fixed points, cheap to redraw per identity.

  A field is a sum of random sinusoids (random Fourier features). The
  frequencies are drawn once per head and scale; the sin/cos bases are
  precomputed, so a new field (new random amplitudes and phases) costs one
  small matrix product instead of thousands of sines per texel.
  """

  def __init__(self, points: np.ndarray, n: int = 16, seed: int = 1234):
    self._p = points.astype(np.float32)
    self._n = n
    self._seed = seed
    self._bases: dict[tuple, np.ndarray] = {}

  def field(self, rng, scale: float, stretch=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A new ~N(0, 1) field with features of size `scale` (metres)."""
    key = (round(scale, 9), tuple(stretch))
    if key not in self._bases:
      # Frequencies depend on the key only, never on which identities a
      # process painted before (that would break byte-determinism).
      words = [int(round(v * 1e6)) for v in (scale, *stretch)]
      w = (
        np.random.default_rng([self._seed, *words]).normal(size=(3, self._n))
        / scale
      )
      w *= np.asarray(stretch, float)[:, None]
      arg = self._p @ w.astype(np.float32)
      self._bases[key] = np.concatenate([np.sin(arg), np.cos(arg)], 1)
    coef = rng.normal(size=2 * self._n).astype(np.float32)
    return self._bases[key] @ coef / np.float32(np.sqrt(self._n))


def _smooth(edge0, edge1, x):
  t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
  return t * t * (3 - 2 * t)


class ProceduralTexture:
  """Paints identity textures for one head model.

  Everything that depends only on the head (the atlas, landmark distances,
  feature masks, noise bases) is computed once here; `paint` then only mixes
  colours with per-identity amplitudes, which keeps it at a few tens of
  milliseconds.

  Args:
    head: a synth.head.HeadModel (template vertices, faces, uvs, parts).
    size: texture side in texels.
  """

  def __init__(self, head, size: int):
    self.atlas = atlas_lib.build_atlas(head, size)
    self.faces = np.asarray(head.faces)
    self.lm = find_landmarks(head)
    covered = self.atlas.covered
    # Paint only covered texels (a 1-D list); `atlas.nearest` pads the rest.
    self.pos = self.atlas.interpolate(
      np.asarray(head.vertices, np.float32), self.faces
    )[covered]
    part = self.atlas.part[covered]
    self.masks = {n: part == i for i, n in enumerate(self.atlas.part_names)}
    self.noise = NoiseBank(self.pos)
    self.f = self._geometry_fields()

  # ----------------------------------------------------- per-head geometry

  def _geometry_fields(self) -> dict[str, np.ndarray]:
    p, lm, u = self.pos, self.lm, self.lm.unit
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    f = {}
    blush = 0.0
    for side in (-1, 1):  # cheeks, then the nose tip
      centre = lm.eyes[(side + 1) // 2] + np.array(
        [0.35 * side * u, -1.1 * u, 0.25 * u], np.float32
      )
      blush = blush + np.exp(-np.sum((p - centre) ** 2, -1) / (0.9 * u) ** 2)
    nose = np.array([0.0, lm.eyes[0, 1] - 1.2 * u, lm.mouth[2] + 0.3 * u])
    f["blush"] = blush + 0.7 * np.exp(
      -np.sum((p - nose) ** 2, -1) / (0.5 * u) ** 2
    )
    sockets, lash = 0.0, 0.0
    for eye in lm.eyes:
      d = np.sqrt(np.sum((p - eye) ** 2, -1))
      sockets = sockets + 0.22 * _smooth(1.6 * u, 0.8 * u, d)
      ahead = _smooth(0.2, 0.5, (z - eye[2]) / lm.eye_radius)
      lash = (
        lash
        + 0.85 * _smooth(1.35 * lm.eye_radius, 1.08 * lm.eye_radius, d) * ahead
      )
    f["sockets"], f["lash"] = sockets, lash
    f["lips"] = self._lip_mask(p)
    line = np.exp(-(((y - lm.mouth[1]) / (0.05 * u)) ** 2))
    line = line * _smooth(0.85 * u, 0.6 * u, np.abs(x))
    cavity = (
      _smooth(lm.mouth[2] - 0.45 * u, lm.mouth[2] - 0.7 * u, z)
      * _smooth(0.9 * u, 0.7 * u, np.abs(x))
      * _smooth(0.5 * u, 0.3 * u, np.abs(y - lm.mouth[1]))
    )
    f["mouth_dark"] = np.clip(0.55 * line + 0.85 * cavity, 0, 0.9)
    f["beard"] = self._beard_zone(p)
    # Brows: position t along the arch (0 medial .. 1 lateral) and centre.
    t = (np.abs(x) - 0.35 * u) / (lm.eyes[1, 0] + 0.45 * u)
    arch = np.sin(np.pi * np.clip(t, 0, 1) ** 0.8)
    f["brow_t"] = np.clip(t, 0, 1)
    f["brow_dy"] = np.abs(
      y - (lm.eyes[0, 1] + (0.62 + 0.14 * arch) * u - 0.1 * u * t)
    )
    f["brow_zone"] = (
      _smooth(-0.08, 0.05, t)
      * _smooth(1.08, 0.9, t)
      * _smooth(lm.eyes[0, 2], lm.eyes[0, 2] + 0.4 * u, z)
    )
    # Scalp: 0 at the face .. 1 at the back, around the vertical axis.
    az = np.arctan2(x, z - (lm.mouth[2] - 3.5 * u))
    f["side"] = (1 - np.cos(az)) / 2
    f["temples"] = 0.5 * u * np.exp(-(((np.abs(az) - 0.6) / 0.25) ** 2))
    return {k: np.asarray(v, np.float32) for k, v in f.items()}

  def _lip_mask(self, p, margin=0.0):
    """Soft mask of the lip vermilion (upper lip has a cupid's bow)."""
    lm, u = self.lm, self.lm.unit
    x = np.abs(p[..., 0]) / (0.78 * u + margin)
    dy = p[..., 1] - lm.mouth[1]
    edge = np.sqrt(np.clip(1 - x**2, 0, 1))
    top = (
      (0.26 * u + margin) * edge**0.6 * (1 - 0.2 * np.exp(-((x / 0.12) ** 2)))
    )
    bottom = (0.34 * u + margin) * edge**0.8
    inside = np.where(
      dy >= 0, 1 - dy / np.maximum(top, 1e-6), 1 + dy / np.maximum(bottom, 1e-6)
    )
    front = _smooth(lm.mouth[2] - 0.9 * u, lm.mouth[2] - 0.6 * u, p[..., 2])
    return _smooth(0.0, 0.25, inside) * front

  def _beard_zone(self, p):
    lm, u = self.lm, self.lm.unit
    y_top = lm.mouth[1] + 0.75 * u  # just under the nose
    below = _smooth(y_top, y_top - 0.3 * u, p[:, 1])
    lower_face = _smooth(
      lm.eyes[0, 1] - 1.3 * u, lm.eyes[0, 1] - 1.9 * u, p[:, 1]
    )
    front = _smooth(lm.mouth[2] - 3.2 * u, lm.mouth[2] - 2.4 * u, p[:, 2])
    around = np.maximum(
      below * _smooth(0.95 * u, 0.75 * u, np.abs(p[:, 0])), lower_face
    )
    return around * front * (1 - self._lip_mask(p, margin=0.15 * u))

  # ------------------------------------------------------- per identity

  def paint(self, demo: records.Demographics, rng) -> np.ndarray:
    """Returns the (S, S, 3) uint8 sRGB albedo of one identity."""
    return self.paint_maps(demo, rng)[0]

  def paint_maps(self, demo: records.Demographics, rng):
    """Albedo and glTF metallic-roughness map of one identity.

    Roughness matters for looks: hair is matte, lips and eyes are glossy,
    skin in between; one material-wide value made dark brows shine grey.

    Returns:
      ((S, S, 3) uint8 sRGB albedo, (S, S, 3) uint8 roughness map laid out
      as pyrender samples it: roughness in red, metalness (0) in green;
      glTF would use green and blue).
    """
    style = sample_style(demo, rng)
    colour = self._skin(style, rng)
    colour, hair = self._hair(colour, style, rng)
    lips = self.f["lips"]
    rough = 0.55 + 0.06 * self.noise.field(rng, 0.3 * self.lm.unit)
    rough = rough * (1 - lips) + 0.35 * lips
    rough = rough * (1 - hair) + 0.95 * hair
    for name, mask in self.masks.items():
      if name == "eyes":
        colour[mask] = self._eyes(self.pos[mask], style)
      elif name in PART_SRGB:
        colour[mask] = srgb_to_linear(PART_SRGB[name])
      elif name != "skin":  # lashes, brow geometry, hair cards: hair colour
        colour[mask] = style.hair
      rough[mask] = PART_ROUGHNESS.get(name, rough[mask])
    texels = (linear_to_srgb(colour) * 255 + 0.5).astype(np.uint8)
    mr = np.zeros_like(texels)  # pyrender reads roughness from red
    mr[:, 0] = np.clip(rough * 255 + 0.5, 0, 255).astype(np.uint8)
    return texels[self.atlas.nearest], mr[self.atlas.nearest]

  def _skin(self, style: Style, rng) -> np.ndarray:
    f, u = self.f, self.lm.unit
    mottle = (0.05 + 0.05 * style.age) * self.noise.field(rng, 0.6 * u)
    mottle += 0.03 * self.noise.field(rng, 0.12 * u)
    mottle += rng.normal(0.0, 0.025, len(self.pos)).astype(np.float32)
    c = style.skin * (1 + mottle)[:, None]
    blush = (style.blush * 0.45 * f["blush"])[:, None]
    c = c * (1 + blush * (np.array([1.12, 0.82, 0.80], np.float32) - 1))
    c = c * (1 - f["sockets"][:, None] * np.array([0.9, 1.0, 0.85], np.float32))
    if style.beard > 0:
      w = (
        style.beard * f["beard"] * (0.8 + 0.2 * self.noise.field(rng, 0.08 * u))
      )
      c = c * (1 - 0.5 * w[:, None] * np.array([0.45, 0.45, 0.42], np.float32))
    lips = f["lips"][:, None]
    tint = np.array([0.80, 0.52, 0.55], np.float32) * (1 - 0.2 * style.age)
    c = c * (1 + lips * (tint - 1))
    dark = f["mouth_dark"][:, None]
    return c * (1 - dark) + srgb_to_linear((0.25, 0.07, 0.07)) * dark

  def _hair(self, c, style, rng):
    f, u = self.f, self.lm.unit
    # Brows: thinner laterally and with age; strands along the arch.
    half = (0.17 - 0.09 * f["brow_t"]) * u * (1 - 0.3 * style.age)
    strands = 0.75 + 0.25 * self.noise.field(rng, 0.12 * u, (1.0, 6.0, 3.0))
    w = (
      _smooth(1.0, 0.55, f["brow_dy"] / half)
      * f["brow_zone"]
      * np.clip(strands, 0, 1)
    )
    hair = 0.9 * w
    brows = hair[:, None]
    c = c * (1 - brows) + style.hair * brows
    # Lash line: dark whatever the hair colour (lashes grey last).
    lash = f["lash"][:, None]
    dark = 0.7 * srgb_to_linear((0.10, 0.07, 0.05)) + 0.3 * style.hair
    c = c * (1 - lash) + dark * lash
    if style.scalp_hair > 0:
      lm = self.lm
      brow_y = lm.eyes[0, 1] + 0.7 * u
      front_y = brow_y + style.hairline * u
      side = f["side"]
      y_line = (
        front_y * (1 - side) + side * (lm.eyes[0, 1] - 2.2 * u) + f["temples"]
      )
      y_line = np.where(
        side > 0.3,
        np.minimum(y_line, brow_y + 0.6 * u - 2.0 * (side - 0.3) * u),
        y_line,
      )
      w = _smooth(y_line - 0.05 * u, y_line + 0.25 * u, self.pos[:, 1])
      grain = rng.uniform(0.75, 1.0, len(w)).astype(np.float32)
      density = 0.92 + 0.08 * self.noise.field(rng, 0.5 * u)
      w = (style.scalp_hair * w * np.clip(grain * density, 0, 1))[:, None]
      # Strands: darker and lighter fibres, not a flat cap.
      shade = 0.75 + 0.5 * rng.uniform(size=(len(w), 1)).astype(np.float32)
      c = c * (1 - w) + style.hair * shade * w
      hair = np.maximum(hair, w[:, 0])
    return c, hair

  def _eyes(self, p, style):
    out = np.empty(p.shape, np.float32)
    sclera = srgb_to_linear((0.80, 0.77, 0.74))
    for k, eye in enumerate(self.lm.eyes):
      sel = (p[:, 0] >= 0) if k == 1 else (p[:, 0] < 0)
      d = p[sel] - eye
      d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
      angle = np.arccos(np.clip(d[:, 2], -1, 1))  # from the gaze axis +z
      iris = _smooth(0.56, 0.50, angle)[:, None]
      pupil = _smooth(0.23, 0.19, angle)[:, None]
      ring = np.exp(-(((angle - 0.52) / 0.03) ** 2))[:, None]
      col = sclera * (1 - iris) + style.iris * iris * (1 - 0.5 * ring)
      out[sel] = col * (1 - pupil) + 0.01 * pupil
    return out
