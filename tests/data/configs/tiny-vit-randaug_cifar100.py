# tiny-vit_cifar100.py with random augmentation (crop, flip) and dropout, iteration-based
# with a checkpoint every 3 iterations: the exact-resume tests (RandomStateHook).
_base_ = ['./tiny-vit_cifar100.py']
model = dict(backbone=dict(drop_rate=0.1))
train_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.3, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=8, by_epoch=False, eta_min=1e-5)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=3)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=1))
# The raw loss of every iteration in the logs (no moving average).
log_processor = dict(by_epoch=False, window_size=1)
