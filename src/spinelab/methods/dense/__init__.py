"""McCouat & Glocker's two-stage dense labelling: a 3D U-Net segments vertebral bodies, a 2D U-Net on
sagittal slabs regresses a continuous vertebra number per pixel, and their product gives one
centroid per label (the median of its voxels)."""
