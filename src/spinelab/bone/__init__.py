"""The bone stage: which voxels of a CT are bone, so that later stages see bone and nothing else.

Real CTs hold much that is as bright as bone without being bone: undiluted contrast agent in the
veins (up to the scanner's 3071 HU ceiling), a contrast-filled heart and aorta, agent in the urinary
tract, calcified plaques. A fixed HU cut keeps all of it. A small 3D U-Net at about 4 mm, trained
only on the synthetic generator's tissue maps under heavy intensity randomization (SynthSeg's idea:
random HU per tissue, random bright distractors, bias field, noise, blur), says where the bone is;
finer stages keep their own voxels only inside that mask.

``BoneStage.load()`` reads the packaged ``spinelab/models/bone.pt``; ``spinelab train-bone``
reproduces it (``spinelab.bone.train``).
"""

from spinelab.bone.stage import DRR_CUT_HU, DRR_SPACING_MM, BoneConfig, BoneStage, default_bone_model, mask_share

__all__ = ["DRR_CUT_HU", "DRR_SPACING_MM", "BoneConfig", "BoneStage", "default_bone_model", "mask_share"]
