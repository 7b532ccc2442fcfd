"""Class-folder splits whose classes differ are refused before the run (they would shift
every label); the same folders, an empty folder or an ann_file keep labels right."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from tests.utils import REPO, run_tool

DEMO_CFG = osp.join(REPO, 'configs', 'demo', 'deit-demo_baseline_digits-16px.py')
IN1K_CFG = osp.join(REPO, 'configs', 'imagenet', 'deit-tiny_8xb128-300e_in1k-224px.py')
CLASSES = ['n01440764', 'n01443537', 'n01484850', 'n01491361']


def _write(root, split, classes, n=8, ann_file=False):
    from nose_mm.datasets import write_image_folder
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
    write_image_folder(root, split, images, [i % len(classes) for i in range(n)], classes,
                       write_ann_file=ann_file)


def _message(root, split, key, missing, extra, counts):
    return (f'{key}.dataset: the class folders of {osp.join(root, split)!r} differ from those '
            f"of {osp.join(root, 'train')!r} (train_dataloader.dataset): missing {missing}, "
            f'extra {extra} ({counts}); labels come from each split\'s own sorted folders, so '
            'they would not match. Give both splits the same class folders (an empty folder '
            'keeps its class index) or label the images with an ann_file (lines "path label")')


def test_train_tool_refuses_a_val_split_missing_a_class(tmp_path):
    root = str(tmp_path / 'data')
    _write(root, 'train', CLASSES)
    _write(root, 'val', CLASSES[:1] + CLASSES[2:])
    opts = [f'{k}_dataloader.dataset.data_root={root}' for k in ('train', 'val', 'test')]
    proc = run_tool('train.py', DEMO_CFG, '--work-dir', tmp_path / 'work', '--cfg-options',
                    *opts, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == 'nose_mm: error: ' + _message(
        root, 'val', 'val_dataloader', "['n01443537']", '[]', '3 vs 4 classes')
    assert not (tmp_path / 'work').exists()


def test_an_empty_class_folder_keeps_the_labels(tmp_path):
    """The fix the message names: with the empty folder the check passes and mmpretrain's
    real dataset gives every val image its train label."""
    from mmpretrain.datasets import CustomDataset

    from nose_mm.apis.launch import load_config, setup_train_cfg
    root = str(tmp_path / 'data')
    _write(root, 'train', CLASSES)
    _write(root, 'val', CLASSES[:1] + CLASSES[2:])
    os.makedirs(osp.join(root, 'val', CLASSES[1]))
    cfg = load_config(DEMO_CFG, {f'{k}_dataloader.dataset.data_root': root
                                 for k in ('train', 'val', 'test')})
    setup_train_cfg(cfg, DEMO_CFG, work_dir=str(tmp_path / 'work'))
    val = CustomDataset(data_root=root, data_prefix='val')
    assert len(val) == 8
    for info in val.data_list:
        folder = osp.basename(osp.dirname(info['img_path']))
        assert info['gt_label'] == CLASSES.index(folder)


def test_test_setup_compares_imagenet_splits_unless_labelled_by_meta_file(tmp_path):
    from nose_mm.apis.launch import load_config, setup_test_cfg
    from nose_mm.utils.cli import UserError
    root = str(tmp_path / 'imagenet')
    _write(root, 'train', CLASSES)
    _write(root, 'val', CLASSES + ['n09999999'], ann_file=True)
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    opts = {f'{k}_dataloader.dataset.data_root': root for k in ('train', 'val', 'test')}
    # meta/val.txt labels the val images: no folder comparison needed
    setup_test_cfg(load_config(IN1K_CFG, opts), IN1K_CFG, str(ckpt))
    shutil.rmtree(osp.join(root, 'meta'))
    with pytest.raises(UserError) as err:
        setup_test_cfg(load_config(IN1K_CFG, opts), IN1K_CFG, str(ckpt))
    assert str(err.value) == _message(root, 'val', 'test_dataloader', '[]', "['n09999999']",
                                      '5 vs 4 classes')
