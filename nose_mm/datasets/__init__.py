from .cifar import NoseCIFAR100
from .folders import ClassFolderError, check_class_folders
from .formats import write_ade20k, write_cifar100, write_image_folder

__all__ = [
    'NoseCIFAR100', 'ClassFolderError', 'check_class_folders', 'write_cifar100',
    'write_image_folder', 'write_ade20k'
]
