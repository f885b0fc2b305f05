"""Qin et al.'s residual multi-label classification and localization network: one 3D network per crop
outputs a presence probability per vertebra class (Bi-LSTM along the spine) and its centroid by
integral regression over a softmax heatmap; crops tiled over the CT vote, clustered per class."""
