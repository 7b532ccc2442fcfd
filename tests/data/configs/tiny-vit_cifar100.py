# A tiny ViT on CIFAR-100 at 32 px: the real dataset class, pipeline shape and
# runtime of configs/, sized for tests on 2 CPU cores. Tests pass the data root
# with --cfg-options.
_base_ = [
    '../../../configs/_base_/datasets/cifar100_bs64_224.py',
    '../../../configs/_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='VisionTransformer',
                  arch=dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=8, drop_rate=0.0, drop_path_rate=0.0),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=32,
              loss=dict(type='CrossEntropyLoss')),
)
train_pipeline = [dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                  dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, num_workers=0,
                        dataset=dict(verify_md5=False, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0,
                      dataset=dict(verify_md5=False, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=2, by_epoch=True, eta_min=1e-5)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=1))
