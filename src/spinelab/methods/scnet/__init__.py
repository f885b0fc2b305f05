"""Payer et al.'s coarse-to-fine method (VISAPP 2020, VerSe 2019 winner): a U-Net finds the spine's
x, y at 8 mm, a SpatialConfiguration-Net gives one heatmap per vertebra class in windows centred on
it, the landmark sequence is read off the heatmap maxima under anatomical rules, and a binary U-Net
segments each localized vertebra, guided by a heatmap of where it is."""
