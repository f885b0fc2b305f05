"""Multi-view DRR localization and identification (Wu et al., MICCAI 2023), spinelab's default method.

The 3D problem becomes 2D: K digitally reconstructed radiographs around the patient, a heatmap
U-Net finds vertebrae in each, a segmentation U-Net names them, rays from all views are intersected
by least squares and the names are voted across views weighted by each view's Sequence Loss.
"""
