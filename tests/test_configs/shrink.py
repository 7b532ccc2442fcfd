"""Turn a real benchmark config into one that runs in seconds on tiny data.

Only sizes change: the dataset classes, pipelines, evaluators, hooks and
schedule types stay those of the real config. The backbone keeps its 12 layers
(so the reference layer sets and out_indices stay valid) at 32 channels with
32 px patches (Swin: depths 2, 2, 6, 2 at 16-128 channels, 2x2 windows, 16 px patches
in both tasks, so a shrunk classifier's weights fit the shrunk segmentor strictly);
pretrained weights are dropped.
"""
import os
import os.path as osp

from mmengine.config import Config

TINY_ARCH = dict(embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64)
TINY_SWIN = dict(embed_dims=16, depths=[2, 2, 6, 2], num_heads=[1, 1, 2, 2])


def _shrink_backbone(backbone):
    """Shrink the backbone config in place; return its 4 stage widths."""
    backbone.update(patch_size=32, drop_path_rate=0.0)
    if 'Swin' in backbone.type:
        backbone.update(arch=TINY_SWIN, patch_size=16, window_size=2)
        return [TINY_SWIN['embed_dims'] * 2**i for i in range(4)]
    backbone.arch = TINY_ARCH
    return [TINY_ARCH['embed_dims']] * 4


def _small_loaders(cfg, data_root, batch_size):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.batch_size = batch_size if key == 'train_dataloader' else 1
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = data_root


def shrink_classification(path, data_root, out_dir, max_epochs=2, extra=None):
    """Write a shrunk copy of a classification config; return its path."""
    cfg = Config.fromfile(path)
    widths = _shrink_backbone(cfg.model.backbone)  # Swin at 224 px: 14 .. 2 tokens
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = widths[-1]
    cfg.load_from = None
    _small_loaders(cfg, data_root, batch_size=4)
    if cfg.train_dataloader.dataset.type == 'NoseCIFAR100':
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.verify_md5 = False
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 1
    for sched in cfg.param_scheduler:  # same schedulers, squeezed into max_epochs
        sched.begin = min(sched.get('begin', 0), 1)
        if 'end' in sched:
            sched.end = max(min(sched.end, max_epochs), sched.begin + 1)
    cfg.param_scheduler = [s for s in cfg.param_scheduler if s.begin < max_epochs]
    cfg.default_hooks.logger.interval = 1
    for hook in cfg.get('custom_hooks', []):
        if hook.type == 'DilutionHook':  # lam reaches 0 at the last epoch
            hook.update(begin=0, end=max_epochs - 1)
        if hook.type == 'NoseSelectionHook':
            hook.update(num_samples=8, batch_size=4)
    cfg.merge_from_dict(extra or {})
    os.makedirs(out_dir, exist_ok=True)
    out = osp.join(out_dir, osp.basename(path))
    cfg.dump(out)
    return out


def shrink_segmentation(path, data_root, out_dir, max_iters=2, extra=None):
    """Write a shrunk copy of a segmentation config; return its path."""
    cfg = Config.fromfile(path)
    widths = _shrink_backbone(cfg.model.backbone)  # Swin at 512 px: 32 .. 4 tokens
    if cfg.model.get('neck') is not None:  # MultiLevelNeck: one width out
        cfg.model.neck.update(in_channels=widths, out_channels=widths[-1])
        widths = [widths[-1]] * 4
    cfg.model.decode_head.update(in_channels=widths, channels=16)
    cfg.model.auxiliary_head.update(in_channels=widths[cfg.model.auxiliary_head.in_index],
                                    channels=16)
    _small_loaders(cfg, data_root, batch_size=2)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0,
                                end=max_iters, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.merge_from_dict(extra or {})
    os.makedirs(out_dir, exist_ok=True)
    out = osp.join(out_dir, osp.basename(path))
    cfg.dump(out)
    return out
