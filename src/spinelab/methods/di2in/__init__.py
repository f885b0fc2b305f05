"""Yang et al.'s deep image-to-image network (IPMI 2017): one Gaussian heatmap per vertebra class over
the whole CT, enhanced by message passing along the spine's chain and refined by a sparse
combination of real spine shapes."""
