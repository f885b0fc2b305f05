"""Quality-control picture: sagittal and coronal bone-window projections with the labelled centroids.

Each view is a maximum-intensity projection (MIP) of the canonical (RAS) volume through a slab that
follows the spine: for every axial level the slab is centred on the centroids interpolated to that
height, so a curved (scoliotic) spine stays inside it while ribs and pelvis outside it do not hide
the vertebrae. The MIP is taken at the scan's own resolution (exact maxima, no interpolation of thin
bone), then the 2D picture is resampled to isotropic display pixels and drawn with its true
millimetre extent, so the aspect ratio is right for any voxel spacing.

The picture has a fixed size; both panels share one scale and sit side by side or one above the
other, whichever shows them larger: a long spine scan fills the picture's height side by side, a
thin axial slab (a few centimetres of S-I extent) fills its width stacked, instead of becoming a strip.

Image coordinates are millimetres along the canonical voxel axes; markers are placed by converting
their RAS+ world position with the volume's own affine, the same geometry the pixels use.
Conventions are the radiological ones: superior up, anterior left in the sagittal view, the
patient's right on the viewer's left in the coronal view. Centroids outside the scanned box are
left out (the panel titles count them); a file with none inside is refused, as it belongs to
another scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from scipy import ndimage

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.files import atomic_path
from spinelab.io.volume import CTVolume

#: Extensions ``render_qc`` writes, each in the format it names.
PICTURE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg", "tif", "tiff")
#: Hounsfield units drawn black and white: a bone window that keeps soft tissue faint.
BONE_WINDOW = (-300.0, 1300.0)
DISPLAY_SPACING_MM = 1.0
#: Half thickness, in mm, of the projected slab around the spine: sagittal (left-right) and coronal
#: (antero-posterior, around the vertebral bodies). The sagittal slab stays narrow so the aorta and
#: the heart, bright in contrast CT, do not cover the vertebral bodies.
SLAB_HALF_WIDTH_MM = {"sagittal": 12.0, "coronal": 20.0}
FIGURE_SIZE_PX = (1200, 900)
DPI = 100
#: Where the panels go, in pixels from the picture's lower-left corner (left, bottom, right, top): the title
#: is above, the legend below, the direction letters in the margins.
PANEL_AREA_PX = (35, 65, 1165, 830)
#: Space between the two panels, for their direction letters.
PANEL_GAP_PX = 50
SCALE_BAR_THICKNESS_PX = 3
LABEL_FONT_SIZE = 7.5
#: Least vertical distance between two names on the same side of the markers.
LABEL_SPACING_PX = 11
#: Band at the top of a panel kept for its title, free of names.
TITLE_BAND_PX = 14
LABEL_ALPHA = 0.4  # opacity of the label map drawn over the bone
REGION_COLOURS = {
    "cervical": (0.0, 0.78, 1.0),
    "thoracic": (1.0, 0.25, 0.25),
    "lumbar": (0.2, 1.0, 0.3),
    "sacral": (1.0, 0.8, 0.0),
}
#: Per view: projected axis and horizontal axis of the canonical grid, direction letters (top, bottom, left, right).
VIEWS = (("sagittal", 0, 1, ("S", "I", "A", "P")), ("coronal", 1, 0, ("S", "I", "R", "L")))
#: Where each direction letter goes: axes corner, offset in points, alignment.
_LETTER_PLACES = (((0.5, 1.0), (0, 3), "center", "bottom"), ((0.5, 0.0), (0, -3), "center", "top"),
                  ((0.0, 0.5), (-4, 0), "right", "center"), ((1.0, 0.5), (4, 0), "left", "center"))
_OUTLINE = [patheffects.withStroke(linewidth=2, foreground="black")]


class _Panel(NamedTuple):
    image: np.ndarray  # [S, horizontal] display pixels
    labels: np.ndarray | None  # [S, horizontal] display pixels: the label map's cut through the slab centre
    extent: tuple[float, float, float, float]  # mm: horizontal low, high, S low, high
    title: str
    directions: tuple[str, str, str, str]
    project: Callable[[np.ndarray], np.ndarray]  # RAS+ world (N, 3) -> panel mm (N, 2)


def picture_format(path: str | Path) -> str:
    """The format ``path``'s extension names, checked before any work so a bad name costs nothing."""
    path = Path(path)
    extension = path.suffix.lower().lstrip(".")
    if extension not in PICTURE_FORMATS:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise SpinelabError(f"{path.name}: cannot write a picture with {what}; "
                            f"use one of {', '.join('.' + name for name in PICTURE_FORMATS)}")
    return extension


def _inside_volume(ct: CTVolume, points: Centroids | None, source: str) -> tuple[Centroids | None, int]:
    """The centroids inside the scanned box (half a voxel beyond the edge centres) and how many lie outside.

    Refuses centroids that all lie outside: they belong to another scan and would draw nothing.
    """
    if points is None or len(points) == 0:
        return points, 0
    distance_mm = ct.distance_outside(points.world)
    inside = distance_mm == 0
    if not inside.any():
        nearest = np.format_float_positional(distance_mm.min(), precision=1, trim="-")
        raise SpinelabError(f"{source}: none of the {len(points)} centroid(s) lies inside the CT's volume "
                            f"(nearest {nearest} mm outside); are they from another scan?")
    return points.take(np.flatnonzero(inside)), int((~inside).sum())


def _slab_projection(array: np.ndarray, axis: int, centre: np.ndarray | None, half_width: float) -> np.ndarray:
    """MIP along ``axis`` (0 or 1) of a canonical array; the result is indexed [other in-plane axis, S].

    ``centre`` gives, per axial level k, the slab centre as a (fractional) index along ``axis``;
    None projects the whole volume.
    """
    stack = np.moveaxis(array, axis, 0)  # (projected, kept, S)
    if centre is None:
        return stack.max(axis=0)
    low = int(np.clip(np.floor(centre.min() - half_width), 0, stack.shape[0] - 1))
    high = int(np.clip(np.ceil(centre.max() + half_width) + 1, low + 1, stack.shape[0]))
    positions = np.arange(low, high)[:, None]
    inside = np.abs(positions - centre[None, :]) <= half_width  # (projected, S)
    masked = np.where(inside[:, None, :], stack[low:high], np.float32(BONE_WINDOW[0]))
    return masked.max(axis=0)


def _spine_curve(canonical: CTVolume, points: Centroids | None) -> np.ndarray | None:
    """Centroid voxel coordinates (R, A) interpolated at every axial level k; shape (n_levels, 2)."""
    if points is None or len(points) == 0:
        return None
    voxels = points.to_voxel(canonical.affine)
    order = np.argsort(voxels[:, 2])
    levels = np.arange(canonical.shape[2])
    return np.stack([np.interp(levels, voxels[order, 2], voxels[order, axis]) for axis in (0, 1)], axis=1)


def _display_image(projection: np.ndarray, spacing: tuple[float, float], order: int = 1) -> np.ndarray:
    """Resample a projection to isotropic display pixels, edges kept in place, transposed to [S, other]."""
    zoom = np.asarray(spacing) / DISPLAY_SPACING_MM
    resampled = ndimage.zoom(projection if order == 0 else projection.astype(np.float32), zoom, order=order,
                             mode="nearest", grid_mode=True)
    return resampled.T


def _slab_cut(labels: np.ndarray, axis: int, centre: np.ndarray | None) -> np.ndarray:
    """The label map on the slab's centre surface (the plane through the spine at every axial level), indexed
    [other in-plane axis, S] like ``_slab_projection``: a cut shows each vertebra's own extent."""
    stack = np.moveaxis(labels, axis, 0)  # (projected, kept, S)
    if centre is None:
        centre = np.full(stack.shape[2], (stack.shape[0] - 1) / 2)
    index = np.clip(np.round(centre).astype(int), 0, stack.shape[0] - 1)
    return np.take_along_axis(stack, index[None, None, :].repeat(stack.shape[1], axis=1), axis=0)[0]


def _label_colours(labels: np.ndarray) -> np.ndarray:
    """RGBA display of a label cut: each vertebra in its region's colour, neighbours told apart by shade."""
    rgba = np.zeros((*labels.shape, 4), dtype=np.float32)
    for label in np.unique(labels[labels > 0]):
        rank = vertebrae.ANATOMICAL_ORDER.index(int(label)) if int(label) in vertebrae.ANATOMICAL_ORDER else 0
        colour = np.array(REGION_COLOURS.get(vertebrae.region(int(label)), (1.0, 1.0, 1.0))) * (0.6 + 0.4 * (rank % 2))
        rgba[labels == label] = (*colour, LABEL_ALPHA)
    return rgba


def _panel_rects(sizes_mm: np.ndarray) -> tuple[list[list[float]], float]:
    """Axes rectangles (figure fractions) for panels of ``sizes_mm`` (width, height), and their shared px per mm.

    The panels go side by side or one above the other, whichever shows them larger; each keeps its true aspect.
    """
    left, bottom, right, top = PANEL_AREA_PX
    area = np.array([right - left, top - bottom], dtype=float)
    side_by_side = min((area[0] - PANEL_GAP_PX) / sizes_mm[:, 0].sum(), area[1] / sizes_mm[:, 1].max())
    stacked = min(area[0] / sizes_mm[:, 0].max(), (area[1] - PANEL_GAP_PX) / sizes_mm[:, 1].sum())
    px_per_mm = max(side_by_side, stacked)
    sizes_px = sizes_mm * px_per_mm
    along = 0 if side_by_side >= stacked else 1  # the axis the panels follow each other on
    starts = np.concatenate([[0.0], np.cumsum(sizes_px[:-1, along] + PANEL_GAP_PX)])
    corners = (area - sizes_px) / 2  # each panel centred across the arrangement
    corners[:, along] = (area[along] - sizes_px[:, along].sum() - PANEL_GAP_PX * (len(sizes_px) - 1)) / 2 + starts
    if along == 1:  # the first panel on top
        corners[:, 1] = area[1] - corners[:, 1] - sizes_px[:, 1]
    size = np.array(FIGURE_SIZE_PX, dtype=float)
    rects = [[*((corner + (left, bottom)) / size), *(extent / size)] for corner, extent in zip(corners, sizes_px)]
    return rects, px_per_mm


def _scale_bar_mm(width_mm: float) -> float:
    """The longest 1, 2 or 5 x 10^k mm within a third of ``width_mm``: the bar measures the image, never covers it."""
    limit = width_mm / 3
    decade = 10.0 ** np.floor(np.log10(limit))
    return max(step * decade for step in (1, 2, 5) if step * decade <= limit)


def _spread(wanted: np.ndarray, spacing: float, low: float, high: float) -> np.ndarray:
    """Heights nearest to ``wanted`` (least squares), in the same order, at least ``spacing`` apart, within
    [low, high] where they fit.

    Pool-adjacent-violators on ``sorted(wanted) - rank * spacing``: names too close together move as one
    evenly spaced block centred where they want to be.
    """
    order = np.argsort(wanted, kind="stable")
    steps = spacing * np.arange(len(wanted))
    blocks: list[tuple[float, int]] = []  # (mean, count) of pooled values
    for value in np.clip(wanted[order], low, high) - steps:
        mean, count = value, 1
        while blocks and blocks[-1][0] > mean:
            previous, size = blocks.pop()
            mean, count = (previous * size + mean * count) / (size + count), size + count
        blocks.append((mean, count))
    heights = np.repeat([mean for mean, _ in blocks], [count for _, count in blocks]) + steps
    heights -= max(heights[-1] - high, 0.0)
    heights += max(low - heights[0], 0.0)
    spread = np.empty_like(heights)
    spread[order] = heights
    return spread


def _draw_points(ax, points: Centroids, positions: np.ndarray, hollow: bool) -> None:
    """Markers coloured by region, each named beside it: predictions are dots named on their right, references
    rings named in italics on their left, so a prediction and its reference never put their names on one side.

    Names on one side are spread vertically in display space so none overlap; a moved name gets a leader line.
    """
    colours = [REGION_COLOURS[vertebrae.region(label)] for label in points.labels]
    if hollow:
        ax.scatter(positions[:, 0], positions[:, 1], s=110, facecolors="none", edgecolors=colours, linewidths=1.6,
                   zorder=3)
    else:
        ax.scatter(positions[:, 0], positions[:, 1], s=40, c=colours, edgecolors="black", linewidths=0.6, zorder=4)
    offset_px, radius_pt, align = (-12, 5, "right") if hollow else (8, 3, "left")
    anchors = ax.transData.transform(positions)
    bottom, top = ax.transAxes.transform([(0, 0), (1, 1)])[:, 1]
    heights = _spread(anchors[:, 1], LABEL_SPACING_PX, bottom + LABEL_SPACING_PX / 2,
                      top - TITLE_BAND_PX - LABEL_SPACING_PX / 2)
    points_per_px = 72 / ax.figure.dpi
    for name, colour, xy, anchor, height in zip(points.names(), colours, positions, anchors, heights):
        shift = height - anchor[1]
        leader = dict(arrowstyle="-", color=colour, linewidth=0.7, shrinkA=1, shrinkB=radius_pt)
        ax.annotate(name, xy, xytext=(offset_px * points_per_px, shift * points_per_px), textcoords="offset points",
                    ha=align, va="center", color=colour, fontsize=LABEL_FONT_SIZE,
                    fontstyle="italic" if hollow else "normal", path_effects=_OUTLINE, zorder=5,
                    arrowprops=leader if abs(shift) > 1 else None)


def _draw_panel(ax, panel: _Panel, px_per_mm: float, centroids: Centroids | None,
                reference: Centroids | None) -> None:
    ax.set_facecolor("black")
    extent = panel.extent
    ax.imshow(panel.image, cmap="gray", vmin=BONE_WINDOW[0], vmax=BONE_WINDOW[1], origin="lower", extent=extent,
              interpolation="bilinear", aspect="equal")
    if panel.labels is not None:
        ax.imshow(_label_colours(panel.labels), origin="lower", extent=extent, interpolation="nearest", aspect="equal")
    ax.set_xlim(extent[1], extent[0])  # anterior / patient's right on the viewer's left
    ax.set_ylim(extent[2], extent[3])
    ax.apply_aspect()  # names are spread in display space: the axes must be where they will be drawn
    predicted = set() if centroids is None else set(centroids.labels.tolist())
    if reference is not None and len(reference):
        for label in sorted(predicted & set(reference.labels.tolist())):
            pair = panel.project(np.stack([reference.as_dict()[label], centroids.as_dict()[label]]))
            ax.plot(pair[:, 0], pair[:, 1], color="white", linewidth=0.8, alpha=0.7, zorder=2)
        _draw_points(ax, reference, panel.project(reference.world), hollow=True)
    if predicted:
        _draw_points(ax, centroids, panel.project(centroids.world), hollow=False)
    for text, (xy, offset, ha, va) in zip(panel.directions, _LETTER_PLACES):
        ax.annotate(text, xy, xycoords="axes fraction", xytext=offset, textcoords="offset points", ha=ha, va=va,
                    color="white", fontsize=12, fontweight="bold")
    length = _scale_bar_mm(extent[1] - extent[0])
    ax.add_artist(AnchoredSizeBar(ax.transData, length, f"{length:g} mm", loc="lower right", color="white",
                                  frameon=False, size_vertical=SCALE_BAR_THICKNESS_PX / px_per_mm, pad=0.6,
                                  fontproperties={"size": 8}))
    ax.text(0.01, 0.995, panel.title, transform=ax.transAxes, ha="left", va="top", color="white", fontsize=8,
            path_effects=_OUTLINE)
    ax.set_xticks([])
    ax.set_yticks([])


def qc_figure(ct: CTVolume, centroids: Centroids | None, title: str | None = None,
              reference: Centroids | None = None, *, centroids_source: str = "centroids",
              reference_source: str = "reference", label_map: CTVolume | None = None) -> Figure:
    """The QC figure (``FIGURE_SIZE_PX``): sagittal and coronal slab MIPs with the centroids as labelled dots.

    A ``label_map`` (VerSe numbers on ``ct``'s grid) is drawn over each panel as its cut through the
    slab's centre, tinted by region.

    ``reference`` (e.g. ground truth) is drawn as hollow rings joined to the same-label prediction by a
    line. The slab follows the reference when given (it is where the spine really is), else the
    centroids; with neither, the whole volume is projected. Centroids outside the CT's box are left out and
    counted in the panel titles; a set with none inside raises ``SpinelabError`` naming its ``*_source``.
    """
    centroids, centroids_outside = _inside_volume(ct, centroids, centroids_source)
    reference, reference_outside = _inside_volume(ct, reference, reference_source)
    hidden = [f"{count} {what}" for count, what in ((centroids_outside, "centroid(s)"),
                                                    (reference_outside, "reference centroid(s)")) if count]
    note = f"; {' and '.join(hidden)} outside the volume not shown" if hidden else ""
    canonical = ct.reoriented(("R", "A", "S"))  # the nearest axis order: a picture needs no resampling
    labels = None if label_map is None else label_map.reoriented(("R", "A", "S")).array
    spacing = canonical.spacing
    curve = _spine_curve(canonical, reference if reference is not None and len(reference) else centroids)
    panels = []
    for name, axis, kept, directions in VIEWS:
        half_width = SLAB_HALF_WIDTH_MM[name] / spacing[axis]
        projection = _slab_projection(canonical.array, axis, None if curve is None else curve[:, axis], half_width)
        extent = (-0.5 * spacing[kept], (canonical.shape[kept] - 0.5) * spacing[kept],
                  -0.5 * spacing[2], (canonical.shape[2] - 0.5) * spacing[2])
        slab = "whole volume" if curve is None else f"{2 * SLAB_HALF_WIDTH_MM[name]:g} mm slab"
        cut = None if labels is None else _display_image(
            _slab_cut(labels, axis, None if curve is None else curve[:, axis]), (spacing[kept], spacing[2]), order=0)
        panels.append(_Panel(_display_image(projection, (spacing[kept], spacing[2])), cut, extent,
                             f"{name} MIP, {slab}{note}", directions,
                             lambda world, kept=kept: (canonical.to_voxel(world) * spacing)[:, [kept, 2]]))

    figure = Figure(figsize=(FIGURE_SIZE_PX[0] / DPI, FIGURE_SIZE_PX[1] / DPI), dpi=DPI, facecolor="black")
    sizes_mm = np.array([(panel.extent[1] - panel.extent[0], panel.extent[3] - panel.extent[2]) for panel in panels])
    rects, px_per_mm = _panel_rects(sizes_mm)
    for rect, panel in zip(rects, panels):
        _draw_panel(figure.add_axes(rect), panel, px_per_mm, centroids, reference)
    figure.suptitle(title or ct.name, color="white", fontsize=12)
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=region, markeredgecolor="black")
               for region, colour in REGION_COLOURS.items()]
    if reference is not None:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="white",
                              color="white", label="reference"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, labelcolor="white", fontsize=8)
    return figure


def render_qc(ct: CTVolume, centroids: Centroids | None, path: str | Path, title: str | None = None,
              reference: Centroids | None = None, *, centroids_source: str = "centroids",
              reference_source: str = "reference", label_map: CTVolume | None = None) -> Path:
    """Write ``qc_figure`` to ``path`` in the format its extension names (``PICTURE_FORMATS``); returns the path."""
    path = Path(path)
    file_format = picture_format(path)
    figure = qc_figure(ct, centroids, title, reference, centroids_source=centroids_source,
                       reference_source=reference_source, label_map=label_map)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=file_format, dpi=DPI, facecolor="black")
    return path
