"""A toy method that proves a new method is one folder plus one registry entry.

It composes only shared parts: the case cache, the ``Trainer`` loop, Gaussian heatmap targets,
patch sampling, MONAI sliding-window inference, the model file and dense labels for a label map.
It finds the single brightest heatmap peak and calls it L1: plumbing, not anatomy.
"""
