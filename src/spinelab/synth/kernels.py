"""Numba kernels that rasterize signed-distance primitives and per-slice body cross-sections.

Every primitive is evaluated only inside its own voxel bounding box, so a whole skeleton costs little
more than the voxels it covers. A primitive either joins the bone union (``MODE_BONE``: keep the
smallest signed distance and who owns it, so the cortical shell later follows the union's surface,
not each part's) or paints a value with partial-volume coverage into a float field (``MODE_PAINT``:
soft tissue, air cavities; the voxel's tissue class follows where coverage reaches one half) or raises
a coverage field (``MODE_COVER``: metal). ``kind`` is the bone material in bone mode and the tissue
class in paint mode. Voxel world position is ``origin + index * spacing`` on an axis-aligned RAS+ grid.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MODE_BONE, MODE_PAINT, MODE_COVER = 0, 1, 2
#: Tissue classes of the tissue map: gas inside the body counts as air; muscles, organs, vessels and
#: discs are soft tissue; VISCERA is the unnamed fat/soft-tissue mix that fills the trunk around the
#: organs (bowel, mesentery, mediastinum); TABLE is the scanner couch; OUTSIDE the padding beyond the
#: reconstruction circle.
AIR, FAT, SOFT, LUNG, BONE, METAL, TABLE, OUTSIDE, VISCERA = 0, 1, 2, 3, 4, 5, 6, 7, 8
TISSUE_NAMES = ("air", "fat", "soft tissue", "lung", "bone", "metal", "table", "outside", "viscera")
KIND_NONE, KIND_WEDGE, KIND_BICONCAVE, KIND_CRUSH = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _write(mode, field, sdf, owner, material, classes, i, j, k, distance, value, label, kind, inv_voxel):
    if mode == MODE_BONE:
        if distance < sdf[i, j, k]:
            # unlabelled bone (ribs, pelvis) joins the union but never takes voxels a vertebra holds
            if label != 0 or owner[i, j, k] == 0 or sdf[i, j, k] >= 0.0:
                owner[i, j, k] = label
            sdf[i, j, k] = distance
            material[i, j, k] = kind
    else:
        coverage = 0.5 - distance * inv_voxel
        if coverage > 0.0:
            if coverage > 1.0:
                coverage = 1.0
            if mode == MODE_PAINT:
                field[i, j, k] += (value - field[i, j, k]) * coverage
                if coverage >= 0.5:
                    classes[i, j, k] = kind
            elif coverage > field[i, j, k]:
                field[i, j, k] = coverage


@njit(cache=True, inline="always")
def _ellipsoid_distance(u, v, w, ru, rv, rw):
    """Approximate signed distance to an axis-aligned ellipsoid (exact for spheres, good near the surface)."""
    k0 = np.sqrt((u / ru) ** 2 + (v / rv) ** 2 + (w / rw) ** 2)
    k1 = np.sqrt((u / (ru * ru)) ** 2 + (v / (rv * rv)) ** 2 + (w / (rw * rw)) ** 2)
    if k1 < 1e-12:
        return -min(ru, min(rv, rw))
    return k0 * (k0 - 1.0) / k1


@njit(cache=True)
def tubes(mode, field, sdf, owner, material, classes, origin, spacing, boxes, segments, value, label, kind, inv_voxel):
    """Tapered tubes with elliptic cross-section; one row of ``segments`` per tube:
    a(3), b(3), radius at a, radius at b, flattening direction n(3), flattening ratio along n."""
    for s in range(segments.shape[0]):
        ax, ay, az = segments[s, 0], segments[s, 1], segments[s, 2]
        bax, bay, baz = segments[s, 3] - ax, segments[s, 4] - ay, segments[s, 5] - az
        length2 = bax * bax + bay * bay + baz * baz
        length = np.sqrt(length2)
        ex, ey, ez = bax / length, bay / length, baz / length
        nx, ny, nz = segments[s, 8], segments[s, 9], segments[s, 10]
        flat = segments[s, 11]
        mx, my, mz = ey * nz - ez * ny, ez * nx - ex * nz, ex * ny - ey * nx  # m = e x n
        i0, i1, j0, j1, k0, k1 = boxes[s, 0], boxes[s, 1], boxes[s, 2], boxes[s, 3], boxes[s, 4], boxes[s, 5]
        reach = max(segments[s, 6], segments[s, 7]) + 1.0 / inv_voxel
        for i in range(i0, i1):
            px = origin[0] + i * spacing[0] - ax
            for j in range(j0, j1):
                py = origin[1] + j * spacing[1] - ay
                for k in range(k0, k1):
                    pz = origin[2] + k * spacing[2] - az
                    t = (px * bax + py * bay + pz * baz) / length2
                    t = min(max(t, 0.0), 1.0)
                    radius = segments[s, 6] + t * (segments[s, 7] - segments[s, 6])
                    dx, dy, dz = px - t * bax, py - t * bay, pz - t * baz
                    if dx * dx + dy * dy + dz * dz > reach * reach:
                        continue  # far outside: cannot change the union or the paint
                    u = dx * nx + dy * ny + dz * nz
                    v = dx * mx + dy * my + dz * mz
                    w = dx * ex + dy * ey + dz * ez
                    distance = _ellipsoid_distance(u, v, w, radius * flat, radius, radius)
                    _write(mode, field, sdf, owner, material, classes, i, j, k, distance, value, label, kind, inv_voxel)


@njit(cache=True)
def ellipsoid(mode, field, sdf, owner, material, classes, origin, spacing, box, centre, frame, radii, shell, planes,
              hole, value, label, kind, inv_voxel):
    """Ellipsoid in a local frame (columns = local axes in world), hollow when ``shell`` > 0, cut by
    half-spaces ``planes`` rows (n(3), offset: keep n.q <= offset) and by a cylindrical ``hole`` along
    the local third axis through the lower half only (x, y, radius; radius 0 = none)."""
    margin = 1.0 + 1.0 / (inv_voxel * min(radii[0], min(radii[1], radii[2])))
    for i in range(box[0], box[1]):
        px = origin[0] + i * spacing[0] - centre[0]
        for j in range(box[2], box[3]):
            py = origin[1] + j * spacing[1] - centre[1]
            for k in range(box[4], box[5]):
                pz = origin[2] + k * spacing[2] - centre[2]
                u = px * frame[0, 0] + py * frame[1, 0] + pz * frame[2, 0]
                v = px * frame[0, 1] + py * frame[1, 1] + pz * frame[2, 1]
                w = px * frame[0, 2] + py * frame[1, 2] + pz * frame[2, 2]
                if (u / radii[0]) ** 2 + (v / radii[1]) ** 2 + (w / radii[2]) ** 2 > margin * margin:
                    continue  # more than a voxel outside
                distance = _ellipsoid_distance(u, v, w, radii[0], radii[1], radii[2])
                if shell > 0.0:
                    distance = max(distance, -distance - shell)
                for p in range(planes.shape[0]):
                    cut = u * planes[p, 0] + v * planes[p, 1] + w * planes[p, 2] - planes[p, 3]
                    distance = max(distance, cut)
                if hole[2] > 0.0 and w < 0.0:
                    distance = max(distance, hole[2] - np.sqrt((u - hole[0]) ** 2 + (v - hole[1]) ** 2))
                _write(mode, field, sdf, owner, material, classes, i, j, k, distance, value, label, kind, inv_voxel)


@njit(cache=True)
def body(mode, field, sdf, owner, material, classes, origin, spacing, box, centre, frame, half, exponent, waist,
         concavity, fracture, fracture_kind, value, label, kind, inv_voxel):
    """Vertebral body: superelliptic cylinder (half sizes right, anterior, superior) with a waist at
    mid-height, concave endplates and an optional compression fracture profile."""
    a, b, h = half[0], half[1], half[2]
    voxel = 1.0 / inv_voxel
    margin = 1.0 + voxel / min(a, b)
    for i in range(box[0], box[1]):
        px = origin[0] + i * spacing[0] - centre[0]
        for j in range(box[2], box[3]):
            py = origin[1] + j * spacing[1] - centre[1]
            for k in range(box[4], box[5]):
                pz = origin[2] + k * spacing[2] - centre[2]
                x = px * frame[0, 0] + py * frame[1, 0] + pz * frame[2, 0]
                y = px * frame[0, 1] + py * frame[1, 1] + pz * frame[2, 1]
                z = px * frame[0, 2] + py * frame[1, 2] + pz * frame[2, 2]
                if abs(z) > h + voxel or (x / a) ** 2 + (y / b) ** 2 > 2.0 * margin * margin:
                    continue  # more than a voxel outside (the superellipse lies inside sqrt(2) x the ellipse)
                zr = min(abs(z) / h, 1.0)
                shrink = 1.0 - waist * (1.0 - zr * zr)
                dxy = -_depth_below(x, y, a * shrink, b * shrink, exponent)
                radial = max(0.0, 1.0 - (x / a) ** 2 - (y / b) ** 2)
                depth = 1.0
                if fracture_kind == KIND_WEDGE:
                    depth = min(max(0.5 + 0.5 * y / b, 0.0), 1.0)
                elif fracture_kind == KIND_BICONCAVE:
                    depth = radial
                top = h * (1.0 - fracture * depth) - concavity * radial
                dz = abs(z) - top
                outside = np.sqrt(max(dxy, 0.0) ** 2 + max(dz, 0.0) ** 2)
                distance = outside + min(max(dxy, dz), 0.0)
                _write(mode, field, sdf, owner, material, classes, i, j, k, distance, value, label, kind, inv_voxel)


@njit(cache=True, inline="always")
def _depth_below(x, y, ax, ay, exponent):
    """Approximate distance (mm) inside a centred superellipse boundary; negative outside."""
    qx, qy = abs(x) / ax + 1e-9, abs(y) / ay + 1e-9
    f = (qx ** exponent + qy ** exponent) ** (1.0 / exponent)
    scale = f ** (1.0 - exponent)
    gx, gy = scale * qx ** (exponent - 1.0) / ax, scale * qy ** (exponent - 1.0) / ay
    return (1.0 - f) / np.sqrt(gx * gx + gy * gy)


@njit(cache=True, inline="always")
def _ellipse_depth(x, y, ax, ay):
    """Approximate distance (mm) inside a centred ellipse; negative outside (cheap, for every voxel)."""
    f = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
    g = np.sqrt((x / (ax * ax)) ** 2 + (y / (ay * ay)) ** 2)
    if g < 1e-12:
        return min(ax, ay)
    return (1.0 - f) * f / g


@njit(cache=True, inline="always")
def _trilinear(grid, origin, step, x, y, z):
    fx = min(max((x - origin[0]) / step, 0.0), grid.shape[0] - 1.001)
    fy = min(max((y - origin[1]) / step, 0.0), grid.shape[1] - 1.001)
    fz = min(max((z - origin[2]) / step, 0.0), grid.shape[2] - 1.001)
    i, j, k = int(fx), int(fy), int(fz)
    tx, ty, tz = fx - i, fy - j, fz - k
    c00 = grid[i, j, k] * (1 - tx) + grid[i + 1, j, k] * tx
    c10 = grid[i, j + 1, k] * (1 - tx) + grid[i + 1, j + 1, k] * tx
    c01 = grid[i, j, k + 1] * (1 - tx) + grid[i + 1, j, k + 1] * tx
    c11 = grid[i, j + 1, k + 1] * (1 - tx) + grid[i + 1, j + 1, k + 1] * tx
    return (c00 * (1 - ty) + c10 * ty) * (1 - tz) + (c01 * (1 - ty) + c11 * ty) * tz


#: Columns of the per-slice table read by ``trunk`` (numba needs them as plain integer constants).
SLICE_COLUMNS = (
    "body_x", "body_y", "body_ax", "body_ay", "fat_depth", "wall_muscle", "fat_fraction", "gas_share", "lung_extent",
    "lung_r_x", "lung_r_y", "lung_l_x", "lung_l_y", "lung_ax", "lung_ay", "dome_r_z", "dome_l_z", "dome_r_x",
    "dome_l_x", "dome_y", "mediastinum_x", "mediastinum_y", "mediastinum_w",
)
(BODY_X, BODY_Y, BODY_AX, BODY_AY, FAT_DEPTH, WALL_MUSCLE, FAT_FRACTION, GAS_SHARE, LUNG_EXTENT, LUNG_R_X, LUNG_R_Y,
 LUNG_L_X, LUNG_L_Y, LUNG_AX, LUNG_AY, DOME_R_Z, DOME_L_Z, DOME_R_X, DOME_L_X, DOME_Y, MEDIASTINUM_X,
 MEDIASTINUM_Y, MEDIASTINUM_W) = range(len(SLICE_COLUMNS))


@njit(cache=True, parallel=True)
def trunk(field, classes, origin, spacing, table, tissue, texture, texture_origin, texture_step, dome_radius):
    """Soft tissues slice by slice: air, subcutaneous fat, wall muscle, interior (a fat/soft-tissue mix
    with bowel gas in the abdomen) and the two lungs under their diaphragm domes.

    ``tissue`` = (air, fat, muscle, soft, lung, gas) HU; ``texture`` holds two coarse random fields
    (mixture, lung vessels) sampled trilinearly.
    """
    nx, ny, nz = field.shape
    air, fat_hu, muscle_hu, soft_hu, lung_hu, gas_hu = tissue[0], tissue[1], tissue[2], tissue[3], tissue[4], tissue[5]
    edge = spacing[0]
    for k in prange(nz):
        z = origin[2] + k * spacing[2]
        row = table[k]
        ax, ay = row[BODY_AX], row[BODY_AY]
        fat, wall, lung, gas = row[FAT_DEPTH], row[FAT_DEPTH] + row[WALL_MUSCLE], row[LUNG_EXTENT], row[GAS_SHARE]
        for i in range(nx):
            x = origin[0] + i * spacing[0]
            for j in range(ny):
                if ax <= 0.0:
                    field[i, j, k] = air
                    classes[i, j, k] = AIR
                    continue
                y = origin[1] + j * spacing[1]
                depth = _ellipse_depth(x - row[BODY_X], y - row[BODY_Y], ax, ay)
                if depth < 0.0:
                    field[i, j, k] = air + (fat_hu - air) * max(0.0, 1.0 + depth / edge)
                    classes[i, j, k] = AIR
                    continue
                if depth < fat:
                    field[i, j, k] = fat_hu
                    classes[i, j, k] = FAT
                    continue
                if depth < wall:
                    field[i, j, k] = muscle_hu
                    classes[i, j, k] = SOFT
                    continue
                mix = _trilinear(texture[0], texture_origin, texture_step, x, y, z)
                share = min(max(0.5 + 1.5 * (mix - row[FAT_FRACTION]), 0.0), 1.0)
                value = soft_hu + (fat_hu - soft_hu) * share
                kind = VISCERA
                if gas > 0.0 and mix > 2.4 - gas:
                    value = gas_hu
                    kind = AIR
                if lung > 0.0:
                    right = x > row[MEDIASTINUM_X]
                    lx = row[LUNG_R_X] if right else row[LUNG_L_X]
                    ly = row[LUNG_R_Y] if right else row[LUNG_L_Y]
                    qx, qy = ((x - lx) / row[LUNG_AX]) ** 2, ((y - ly) / row[LUNG_AY]) ** 2
                    inside = qx * np.sqrt(qx) + qy * np.sqrt(qy) < lung * lung * lung  # superellipse, power 3
                    # hugging the spine at the back, narrowing to the anterior junction line in front
                    band = row[MEDIASTINUM_W] * (1.0 - 0.6 * min(max(y - row[MEDIASTINUM_Y], 0.0) / 80.0, 1.0))
                    dome_z = row[DOME_R_Z] if right else row[DOME_L_Z]
                    dome_x = row[DOME_R_X] if right else row[DOME_L_X]
                    r2 = (x - dome_x) ** 2 + (y - row[DOME_Y]) ** 2
                    if inside and abs(x - row[MEDIASTINUM_X]) > band and z > dome_z - r2 / (2.0 * dome_radius):
                        vessel = _trilinear(texture[1], texture_origin, texture_step, x, y, z) / 0.055
                        value = lung_hu + (soft_hu - lung_hu) * max(0.0, 1.0 - vessel * vessel)
                        kind = LUNG
                field[i, j, k] = value
                classes[i, j, k] = kind


@njit(cache=True, inline="always")
def _hash(i, j, k, seed):
    """Deterministic pseudo-random value in [-0.5, 0.5] for an integer lattice point."""
    h = (i * 73856093) ^ (j * 19349663) ^ (k * 83492791) ^ seed
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFFFF) / 65535.0 - 0.5


@njit(cache=True, inline="always")
def _value_noise(x, y, z, cell, seed):
    """Smooth lattice noise with correlation length ``cell`` (mm), like trabecular bone texture."""
    fx, fy, fz = x / cell, y / cell, z / cell
    i, j, k = int(np.floor(fx)), int(np.floor(fy)), int(np.floor(fz))
    tx, ty, tz = fx - i, fy - j, fz - k
    total = 0.0
    for di in range(2):
        for dj in range(2):
            for dk in range(2):
                weight = (tx if di else 1 - tx) * (ty if dj else 1 - ty) * (tz if dk else 1 - tz)
                total += weight * _hash(i + di, j + dj, k + dk, seed)
    return total


@njit(cache=True, parallel=True)
def compose(field, sdf, material, origin, spacing, cortical, cancellous, cortex, voxel, seed, trabecular):
    """Bone over soft tissue with partial volume: a voxel of size ``voxel`` centred at signed distance
    s is bone over the part with distance < 0, cortical over the part within ``cortex[m]`` of the
    surface; the marrow carries a trabecular texture of amplitude ``trabecular`` HU."""
    nx, ny, nz = field.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                s = sdf[i, j, k]
                if s >= 0.5 * voxel:
                    continue
                m = material[i, j, k]
                lo, hi = -s - 0.5 * voxel, -s + 0.5 * voxel  # depth interval the voxel spans
                inside = (hi - max(lo, 0.0)) / voxel
                shell = max(0.0, min(hi, cortex[m]) - max(lo, 0.0)) / voxel
                texture = _value_noise(origin[0] + i * spacing[0], origin[1] + j * spacing[1],
                                       origin[2] + k * spacing[2], 1.4, seed)
                core = cancellous[m] + trabecular * 2.5 * texture
                field[i, j, k] = field[i, j, k] * (1.0 - inside) + cortical[m] * shell + core * (inside - shell)


@njit(cache=True, parallel=True)
def metal_streaks(field, metal, spacing, angles, strength):
    """Streaks of each axial slice holding metal, as filtered back-projection of a beam-hardening error.

    Along every ray the error grows faster than the metal path it crosses (so rays through two screws
    go dark) and is high-pass filtered like a reconstruction kernel (bright rims beside dark bands).
    """
    nx, ny, nz = field.shape
    step = min(spacing[0], spacing[1])
    half = 0.5 * np.sqrt((nx * spacing[0]) ** 2 + (ny * spacing[1]) ** 2)
    bins = int(2 * half / step) + 3
    width = max(2, int(4.0 / step))
    for k in prange(nz):
        has_metal = False
        for i in range(nx):
            for j in range(ny):
                if metal[i, j, k] > 0.5:
                    has_metal = True
                    break
            if has_metal:
                break
        if not has_metal:
            continue
        x0, y0 = 0.5 * nx * spacing[0], 0.5 * ny * spacing[1]
        for a in range(angles.shape[0]):
            cos, sin = np.cos(angles[a]), np.sin(angles[a])
            projection = np.zeros(bins)
            for i in range(nx):
                for j in range(ny):
                    if metal[i, j, k] > 0.0:
                        t = (i * spacing[0] - x0) * cos + (j * spacing[1] - y0) * sin
                        projection[int((t + half) / step) + 1] += metal[i, j, k] * step
            error = -(projection ** 1.5)
            filtered = np.zeros(bins)
            for b in range(bins):
                total, count = 0.0, 0
                for c in range(max(0, b - width), min(bins, b + width + 1)):
                    total += error[c]
                    count += 1
                filtered[b] = error[b] - total / count
            streak = filtered + 0.2 * error
            for i in range(nx):
                for j in range(ny):
                    t = (i * spacing[0] - x0) * cos + (j * spacing[1] - y0) * sin
                    field[i, j, k] += strength * streak[int((t + half) / step) + 1]
