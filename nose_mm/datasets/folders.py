"""Class-folder splits must list the same classes, or labels shift (docs/design.md)."""
import os
import os.path as osp
from typing import Iterable, List, Optional, Tuple

__all__ = ['ClassFolderError', 'check_class_folders']

#: Dataset types whose labels come from class sub-folders when no ann_file is given.
FOLDER_DATASETS = ('CustomDataset', 'ImageNet', 'ImageNet21k')


class ClassFolderError(ValueError):
    """Two splits of a run have different class folders."""


def class_folder(ds: dict) -> Optional[str]:
    """The folder whose sub-folders give dataset config ``ds``'s labels, or None."""
    kind = str(ds.get('type', '')).rsplit('.', 1)[-1]
    if kind not in FOLDER_DATASETS or ds.get('ann_file') or ds.get('with_label', True) is False:
        return None
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path') or ''
    if kind == 'ImageNet':
        split = ds.get('split') or ''
        if split == 'test':
            return None  # mmpretrain: no labels
        if split and osp.isfile(osp.join(root, 'meta', f'{split}.txt')):
            return None  # mmpretrain then reads the labels from meta/<split>.txt
        prefix = prefix or split
    folder = osp.join(root, prefix) if prefix else root
    if not folder or '://' in folder or not osp.isdir(folder):
        return None
    return folder


def _names(items: List[str], shown: int = 5) -> str:
    more = ', ...' if len(items) > shown else ''
    return '[' + ', '.join(map(repr, items[:shown])) + more + ']'


def check_class_folders(datasets: Iterable[Tuple[str, dict]]) -> None:
    """Raise unless every class-folder split has the reference split's classes.

    Args:
        datasets (iterable of (str, dict)): ``(where, cfg)`` pairs, the reference first.

    Raises:
        ClassFolderError: Naming the split, the missing and extra folders and the fix.
    """
    reference = None
    for where, ds in datasets:
        folder = class_folder(ds)
        if folder is None:
            continue
        classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
        if reference is None:
            reference = (where, folder, classes)
            continue
        ref_where, ref_folder, ref_classes = reference
        if classes == ref_classes:
            continue
        missing = sorted(set(ref_classes) - set(classes))
        extra = sorted(set(classes) - set(ref_classes))
        raise ClassFolderError(
            f'{where}: the class folders of {folder!r} differ from those of {ref_folder!r} '
            f'({ref_where}): missing {_names(missing)}, extra {_names(extra)} '
            f'({len(classes)} vs {len(ref_classes)} classes); labels come from each split\'s '
            f'own sorted folders, so they would not match. Give both splits the same class '
            f'folders (an empty folder keeps its class index) or label the images with an '
            f'ann_file (lines "path label")')
