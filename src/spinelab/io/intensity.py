"""Is a CT in Hounsfield units? Recognising exports that are not, from the voxel values alone.

A CT in HU has air near -1000 (fat near -100, lung near -850, so always some negative values), soft
tissue near 0-60 and a bone tail above ~300. Scanners fill voxels outside the reconstruction circle
with a padding value (``PADDING_VALUES``); when the volume's minimum is one of them those voxels are
left out, so padding cannot make an 8-bit export or offset data look signed. Volumes with negative
values are accepted as HU. Without negative values the data is one of:

- a label map: integer values in uniform regions. Measured as the share of voxels strictly between
  the minimum and maximum whose neighbour along the first axis of the sample holds the same value:
  0.79-0.94 for the four VerSe masks in ../shared/data (uint8 and float64), the chest example's
  TotalSegmentator map (90 labels) and TPTBox's vertebra and subregion masks; at most 0.14 for 8-bit
  windowed exports of the two real example CTs and 12 synthetic CTs (windows -1000..1000,
  -500..1500, -160..240, -1350..150). Threshold ``LABEL_MAP_UNIFORMITY`` = 0.5. Counting distinct
  values does not separate them: those exports hold 88-256 distinct values, that map 90.
- an 8-bit windowed export: values 0..255, reaching at least 100 (the exports above reach 132-255).
- HU stored with a +1024 offset and no rescale (raw DICOM pixel data or a uint16 conversion): air
  near 0, soft tissue near 1024. Subtracting 1024 is done only when the histogram shows all three
  parts of a CT, measured on the same 14 CTs shifted by +1024 (clipped at 0): at least
  ``MIN_AIR_FRACTION`` = 1% of voxels below 200 (HU -824): 21-73% for the 11 scans with air around
  the body, 2.0% and 0.6% for two synthetic scans targeted inside it (the first is converted, the
  second refused) and 0% for the TPTBox crop (refused); the most common value above 500 (HU -524)
  within 824..1174 (HU -200..150): measured 905-1085 (HU -119..61, fat or soft tissue); at least
  ``MIN_BONE_FRACTION`` = 0.2% above 1324 (HU 300): measured 1.3-8.1%.

Also refused: int8 data (cannot hold -1000..1000), and values beyond +-1e5 (measured maxima: 3071
for the chest example, 32767 for synthetic metal, i.e. int16's limit; padding is at most 32768).
The two real examples (min -2048 padding / -1030), the 12 synthetic CTs (min -998 to -3024) and the
DICOM fixtures of tests/test_dicom.py (-1024..127) all have negative values and pass unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np

from spinelab.errors import SpinelabError, SpinelabWarning

#: Values scanners write outside the reconstructed field of view.
PADDING_VALUES = (-1024, -2000, -2048, -3000, -3024, -32768)
#: No CT holds values beyond this, whatever its units (padding included).
ABSURD_VALUE = 1e5
#: Histograms are taken on a strided sample of about this many voxels.
SAMPLE_VOXELS = 4_000_000
LABEL_MAP_UNIFORMITY = 0.5
HU_OFFSET = 1024
AIR_BELOW = 200  # offset units: HU -824
MIN_AIR_FRACTION = 0.01
SOFT_TISSUE_MODE = (824, 1174)  # offset units: HU -200..150
TISSUE_ABOVE = 500  # offset units: HU -524, where the soft-tissue mode is looked for
BONE_ABOVE = 1324  # offset units: HU 300
MIN_BONE_FRACTION = 0.002


def checked_hounsfield(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` if it looks like HU, converted if it is safely HU + 1024 (with a warning); else a SpinelabError."""
    if array.dtype == np.int8:
        raise SpinelabError(f"{name}: voxel type int8 cannot hold Hounsfield units (-1000..1000); "
                            "this is a converted export, not the CT")
    low, high = float(array.min()), float(array.max())
    if max(abs(low), abs(high)) > ABSURD_VALUE:
        extreme = low if abs(low) > abs(high) else high
        raise SpinelabError(f"{name}: value {extreme:g} is far outside Hounsfield units (|value| > {ABSURD_VALUE:g}); "
                            "the file is corrupt or not a CT")
    sample = _sample_without_padding(array)
    values = sample[np.isfinite(sample)]
    if values.size == 0 or values.min() < 0:
        return array
    low, high = float(values.min()), float(values.max())
    if _is_label_map(sample, values):
        count = len(np.unique(values))
        raise SpinelabError(f"{name}: looks like a label map ({count} integer values {low:g}..{high:g} in uniform "
                            "regions), not a CT in Hounsfield units")
    if 100 <= high <= 255:
        raise SpinelabError(f"{name}: looks like an 8-bit windowed export (values {low:g}..{high:g}), "
                            "not Hounsfield units; use the original CT")
    air, soft_tissue = _offset_signature(values)
    if air is None:
        raise SpinelabError(
            f"{name}: values {low:g}..{high:g} have no negatives, so they are not Hounsfield units, and they do not "
            f"clearly show HU + {HU_OFFSET} (air near 0, soft tissue near {HU_OFFSET}, bone above {BONE_ABOVE})")
    warnings.warn(f"{name}: values {low:g}..{high:g} look like Hounsfield units + {HU_OFFSET} stored without a rescale "
                  f"(air near {air:g}, soft tissue near {soft_tissue:g}); subtracted {HU_OFFSET}",
                  SpinelabWarning, stacklevel=2)
    return _minus_offset(array)


def _sample_without_padding(array: np.ndarray) -> np.ndarray:
    """A strided sample as float, still 3D so that neighbours stay neighbours, with padding voxels set to NaN."""
    stride = max(1, int(np.ceil((array.size / SAMPLE_VOXELS) ** (1 / 3))))
    sample = array[::stride, ::stride, ::stride].astype(np.float64)
    lowest = sample.min()
    if lowest in PADDING_VALUES:
        sample = np.where(sample == lowest, np.nan, sample)
    return sample


def _is_label_map(sample: np.ndarray, values: np.ndarray) -> bool:
    """Integer values that mostly repeat their neighbour: regions of one label, not noisy intensities."""
    if not np.array_equal(values, np.round(values)):
        return False
    low, high = values.min(), values.max()
    inner = (sample[1:] > low) & (sample[1:] < high)
    if not inner.any():
        return True
    return float((sample[1:] == sample[:-1])[inner].mean()) >= LABEL_MAP_UNIFORMITY


def _offset_signature(values: np.ndarray) -> tuple[float | None, float | None]:
    """(air mode, soft-tissue mode) if the values show air, soft tissue and bone of HU + 1024; else (None, None)."""
    air = values[values < AIR_BELOW]
    tissue = values[values >= TISSUE_ABOVE]
    if air.size < MIN_AIR_FRACTION * values.size or (values > BONE_ABOVE).mean() < MIN_BONE_FRACTION:
        return None, None
    soft_tissue = _mode(tissue)
    if not SOFT_TISSUE_MODE[0] <= soft_tissue <= SOFT_TISSUE_MODE[1]:
        return None, None
    return _mode(air), soft_tissue


def _mode(values: np.ndarray, bin_width: float = 10.0) -> float:
    """Centre of the fullest ``bin_width`` bin."""
    edges = np.arange(values.min(), values.max() + bin_width, bin_width)
    counts, edges = np.histogram(values, bins=edges if edges.size > 1 else 1)
    return float((edges[np.argmax(counts)] + edges[np.argmax(counts) + 1]) / 2)


def _minus_offset(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        return array - HU_OFFSET
    shifted = array.astype(np.int32) - HU_OFFSET
    fits_int16 = shifted.min() >= np.iinfo(np.int16).min and shifted.max() <= np.iinfo(np.int16).max
    return shifted.astype(np.int16) if fits_int16 else shifted
