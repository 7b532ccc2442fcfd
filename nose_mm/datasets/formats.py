"""Write data in the on-disk formats OpenMMLab datasets read (docs/design.md)."""
import os
import os.path as osp
import pickle
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ['write_cifar100', 'write_image_folder', 'write_ade20k']


def _check_images(images: np.ndarray, labels: Sequence[int], name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f'{name}: images must be uint8 N x H x W x 3, got '
                         f'{images.dtype} {tuple(images.shape)}')
    if len(images) != len(labels):
        raise ValueError(f'{name}: {len(images)} images but {len(labels)} labels')
    return images


def write_cifar100(root: str, train_images: np.ndarray, train_labels: Sequence[int],
                   test_images: np.ndarray, test_labels: Sequence[int]) -> str:
    """Write ``<root>/cifar-100-python/{train,test,meta}`` pickles (classes ``class_000``...).

    Args:
        root (str): Dataset root (the config's ``data_root``).
        train_images, test_images (np.ndarray): uint8 N x 32 x 32 x 3 (HWC).
        train_labels, test_labels (sequence of int): Fine labels in [0, 100).

    Returns:
        str: The folder written (``<root>/cifar-100-python``).
    """
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    for split, images, labels in (('train', train_images, train_labels),
                                  ('test', test_images, test_labels)):
        images = _check_images(images, labels, split)
        if images.shape[1:3] != (32, 32):
            raise ValueError(f'{split}: CIFAR images are 32 x 32, got {images.shape[1:3]}')
        labels = [int(v) for v in labels]
        bad = [v for v in labels if not 0 <= v < 100]
        if bad:
            raise ValueError(f'{split}: labels must be in [0, 100), got {bad[:5]}')
        entry = {
            'filenames': [f'{split}_{i:06d}.png' for i in range(len(labels))],
            # CIFAR stores each image as 3072 bytes: the R, G then B planes (CHW).
            'data': images.transpose(0, 3, 1, 2).reshape(len(images), -1),
            'fine_labels': labels,
            'coarse_labels': [v // 5 for v in labels],
        }
        with open(osp.join(folder, split), 'wb') as f:
            pickle.dump(entry, f)
    meta = {'fine_label_names': [f'class_{i:03d}' for i in range(100)],
            'coarse_label_names': [f'superclass_{i:02d}' for i in range(20)]}
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f)
    return folder


def write_image_folder(root: str, split: str, images: np.ndarray, labels: Sequence[int],
                       class_names: Sequence[str], write_ann_file: bool = True) -> str:
    """Write ``<root>/<split>/<class>/*.JPEG`` (ImageNet layout) and ``meta/<split>.txt``.

    Args:
        root (str): Dataset root.
        split (str): ``'train'`` or ``'val'`` (any folder name works).
        images (np.ndarray): uint8 N x H x W x 3.
        labels (sequence of int): Indices into ``class_names``.
        class_names (sequence of str): Folder name of each class (e.g. wnids).
        write_ann_file (bool): Also write ``meta/<split>.txt``. Defaults to True.

    Returns:
        str: The split folder written.
    """
    images = _check_images(images, labels, split)
    folder = osp.join(root, split)
    for cls in class_names:  # empty classes too get their folder
        os.makedirs(osp.join(folder, cls), exist_ok=True)
    lines = []
    for i, (img, label) in enumerate(zip(images, labels)):
        rel = f'{class_names[int(label)]}/{split}_{i:06d}.JPEG'
        Image.fromarray(img).save(osp.join(folder, rel), format='JPEG', quality=95)
        lines.append(f'{rel} {int(label)}')
    if write_ann_file:
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return folder


def write_ade20k(root: str, split: str, images: np.ndarray, label_maps: np.ndarray) -> str:
    """Write ``<root>/ADEChallengeData2016/{images,annotations}/<split>/``.

    Args:
        root (str): Dataset root (the folder holding ``ADEChallengeData2016``).
        split (str): ``'training'`` or ``'validation'``.
        images (np.ndarray): uint8 N x H x W x 3.
        label_maps (np.ndarray): uint8 N x H x W in [0, 150] (0: "other").

    Returns:
        str: The ``ADEChallengeData2016`` folder.
    """
    if split not in ('training', 'validation'):
        raise ValueError(f"split must be 'training' or 'validation', got {split!r}")
    images = _check_images(images, list(range(len(label_maps))), split)
    label_maps = np.asarray(label_maps)
    if label_maps.shape != images.shape[:3] or label_maps.dtype != np.uint8:
        raise ValueError(f'label_maps must be uint8 {images.shape[:3]}, got '
                         f'{label_maps.dtype} {label_maps.shape}')
    if label_maps.max(initial=0) > 150:
        raise ValueError(f'ADE20k labels are in [0, 150], got max {label_maps.max()}')
    base = osp.join(root, 'ADEChallengeData2016')
    img_dir, ann_dir = osp.join(base, 'images', split), osp.join(base, 'annotations', split)
    for folder in (img_dir, ann_dir):
        os.makedirs(folder, exist_ok=True)
    prefix = 'ADE_train' if split == 'training' else 'ADE_val'
    for i, (img, lab) in enumerate(zip(images, label_maps)):
        name = f'{prefix}_{i + 1:08d}'
        Image.fromarray(img).save(osp.join(img_dir, name + '.jpg'), format='JPEG', quality=95)
        Image.fromarray(lab).save(osp.join(ann_dir, name + '.png'))
    return base
