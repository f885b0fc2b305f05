"""Quality-control picture: sagittal and coronal bone-window projections with the labelled centroids.

Each view is a maximum-intensity projection (MIP) of the canonical (RAS) volume through a slab that
follows the spine: for every axial level the slab is centred on the centroids interpolated to that
height, so a curved (scoliotic) spine stays inside it while ribs and pelvis outside it do not hide
the vertebrae. The MIP is taken at the scan's own resolution (exact maxima, no interpolation of thin
bone), then the 2D picture is resampled to isotropic display pixels and drawn with its true
millimetre extent, so the aspect ratio is right for any voxel spacing.

Image coordinates are millimetres along the canonical voxel axes; markers are placed by converting
their RAS+ world position with the volume's own affine, the same geometry the pixels use.
Conventions are the radiological ones: superior up, anterior left in the sagittal view, the
patient's right on the viewer's left in the coronal view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from scipy import ndimage

from spinelab import vertebrae
from spinelab.io.centroids import Centroids
from spinelab.io.files import atomic_path
from spinelab.io.volume import CTVolume

#: Hounsfield units drawn black and white: a bone window that keeps soft tissue faint.
BONE_WINDOW = (-300.0, 1300.0)
DISPLAY_SPACING_MM = 1.0
#: Half thickness, in mm, of the projected slab around the spine: sagittal (left-right) and coronal
#: (antero-posterior, around the vertebral bodies). The sagittal slab stays narrow so the aorta and
#: the heart, bright in contrast CT, do not cover the vertebral bodies.
SLAB_HALF_WIDTH_MM = {"sagittal": 12.0, "coronal": 20.0}
FIGURE_SIZE_PX = (1200, 900)
DPI = 100
REGION_COLOURS = {
    "cervical": (0.0, 0.78, 1.0),
    "thoracic": (1.0, 0.25, 0.25),
    "lumbar": (0.2, 1.0, 0.3),
    "sacral": (1.0, 0.8, 0.0),
}
#: Per view: projected axis and horizontal axis of the canonical grid, direction letters (top, bottom, left, right).
VIEWS = (("sagittal", 0, 1, ("S", "I", "A", "P")), ("coronal", 1, 0, ("S", "I", "R", "L")))
_OUTLINE = [patheffects.withStroke(linewidth=2, foreground="black")]


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


def _display_image(projection: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Resample a projection to isotropic display pixels, edges kept in place, transposed to [S, other]."""
    zoom = np.asarray(spacing) / DISPLAY_SPACING_MM
    resampled = ndimage.zoom(projection.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)
    return resampled.T


def _draw_points(ax, points: Centroids, positions: np.ndarray, hollow: bool, named) -> None:
    colours = [REGION_COLOURS[vertebrae.region(label)] for label in points.labels]
    if hollow:
        ax.scatter(positions[:, 0], positions[:, 1], s=110, facecolors="none", edgecolors=colours, linewidths=1.6,
                   zorder=3)
    else:
        ax.scatter(positions[:, 0], positions[:, 1], s=40, c=colours, edgecolors="black", linewidths=0.6, zorder=4)
    offset, align = ((-9, 0), "right") if hollow else ((7, 0), "left")
    for label, name, colour, xy in zip(points.labels, points.names(), colours, positions):
        if label in named:
            ax.annotate(name, xy, xytext=offset, textcoords="offset points", ha=align, va="center", color=colour,
                        fontsize=7.5, fontstyle="italic" if hollow else "normal", path_effects=_OUTLINE, zorder=5,
                        annotation_clip=True)


def _draw_panel(ax, image, extent, title, directions, centroids, reference, project) -> None:
    ax.set_facecolor("black")
    ax.imshow(image, cmap="gray", vmin=BONE_WINDOW[0], vmax=BONE_WINDOW[1], origin="lower", extent=extent,
              interpolation="bilinear", aspect="equal")
    ax.set_xlim(extent[1], extent[0])  # anterior / patient's right on the viewer's left
    ax.set_ylim(extent[2], extent[3])
    predicted = set() if centroids is None else set(centroids.labels.tolist())
    if reference is not None and len(reference):
        for label in sorted(predicted & set(reference.labels.tolist())):
            pair = project(np.stack([reference.as_dict()[label], centroids.as_dict()[label]]))
            ax.plot(pair[:, 0], pair[:, 1], color="white", linewidth=0.8, alpha=0.7, zorder=2)
        # Reference names only where no prediction carries the label: the missed vertebrae.
        missed = set(reference.labels.tolist()) - predicted
        _draw_points(ax, reference, project(reference.world), hollow=True, named=missed)
    if predicted:
        _draw_points(ax, centroids, project(centroids.world), hollow=False, named=predicted)
    outside = [((0.5, 1.005), "center", "bottom"), ((0.5, -0.005), "center", "top"),
               ((-0.01, 0.5), "right", "center"), ((1.01, 0.5), "left", "center")]
    for text, (xy, ha, va) in zip(directions, outside):
        ax.text(*xy, text, transform=ax.transAxes, ha=ha, va=va, color="white", fontsize=12, fontweight="bold")
    ax.add_artist(AnchoredSizeBar(ax.transData, 50, "50 mm", loc="lower right", color="white", frameon=False,
                                  size_vertical=1.5, pad=0.6, fontproperties={"size": 8}))
    ax.text(0.01, 0.995, title, transform=ax.transAxes, ha="left", va="top", color="white", fontsize=8,
            path_effects=_OUTLINE)
    ax.set_xticks([])
    ax.set_yticks([])


def render_qc(ct: CTVolume, centroids: Centroids | None, path: str | Path, title: str | None = None,
              reference: Centroids | None = None) -> Path:
    """Write a PNG (``FIGURE_SIZE_PX``) with sagittal and coronal slab MIPs and the centroids; returns its path.

    ``reference`` (e.g. ground truth) is drawn as hollow rings joined to the same-label prediction by a
    line. The slab follows the reference when given (it is where the spine really is), else the
    centroids; with neither, the whole volume is projected.
    """
    canonical = ct.canonical()
    spacing = canonical.spacing
    curve = _spine_curve(canonical, reference if reference is not None and len(reference) else centroids)
    views = []
    for name, axis, kept, directions in VIEWS:
        half_width = SLAB_HALF_WIDTH_MM[name] / spacing[axis]
        projection = _slab_projection(canonical.array, axis, None if curve is None else curve[:, axis], half_width)
        extent = (-0.5 * spacing[kept], (canonical.shape[kept] - 0.5) * spacing[kept],
                  -0.5 * spacing[2], (canonical.shape[2] - 0.5) * spacing[2])
        slab = "whole volume" if curve is None else f"{2 * SLAB_HALF_WIDTH_MM[name]:g} mm slab"
        views.append((_display_image(projection, (spacing[kept], spacing[2])), extent,
                      f"{name} MIP, {slab}", directions,
                      lambda world, kept=kept: (canonical.to_voxel(world) * spacing)[:, [kept, 2]]))

    widths = [extent[1] - extent[0] for _, extent, *_ in views]
    figure = Figure(figsize=(FIGURE_SIZE_PX[0] / DPI, FIGURE_SIZE_PX[1] / DPI), dpi=DPI, facecolor="black")
    grid = figure.add_gridspec(1, 2, width_ratios=widths, left=0.03, right=0.97, bottom=0.08, top=0.91, wspace=0.14)
    for cell, (image, extent, panel_title, directions, project) in zip(grid, views):
        _draw_panel(figure.add_subplot(cell), image, extent, panel_title, directions, centroids, reference, project)
    figure.suptitle(title or ct.name, color="white", fontsize=12)
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=region, markeredgecolor="black")
               for region, colour in REGION_COLOURS.items()]
    if reference is not None:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="white",
                              color="white", label="reference"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, labelcolor="white", fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, facecolor="black")
    return path
