"""Training parts every method composes: the loop, the model file, the case cache, augmentation."""

from spinelab.training.augment import intensity_augment, zscore_augment
from spinelab.training.cache import build_cache, load_cache, prepared_cases
from spinelab.training.loop import Trainer, batches
from spinelab.training.model_file import ModelFile, load_model_file, save_model_file

__all__ = ["ModelFile", "Trainer", "batches", "build_cache", "intensity_augment", "load_cache", "load_model_file",
           "prepared_cases", "save_model_file", "zscore_augment"]
