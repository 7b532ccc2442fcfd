from .cifar import NoseCIFAR100
from .demo import build_digits_classification, build_digits_segmentation
from .folders import ClassFolderError, check_class_folders
from .formats import write_ade20k, write_cifar100, write_image_folder

__all__ = [
    'NoseCIFAR100', 'ClassFolderError', 'check_class_folders', 'write_cifar100',
    'write_image_folder', 'write_ade20k', 'build_digits_classification',
    'build_digits_segmentation'
]
