# The built-in demo's baseline: a small DeiT-style ViT trained from scratch on
# scikit-learn's real handwritten digits (written by tools/demo.py in the
# ImageNet folder layout under data/digits, 16 px). Sized to train in about a
# minute on 2 CPU cores.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/digits'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='NoseVisionTransformer',
        arch=dict(embed_dims=64, num_layers=6, num_heads=4, feedforward_channels=128),
        img_size=16, patch_size=4, drop_rate=0.0, drop_path_rate=0.0,
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                  dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=64,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
)
data_preprocessor = dict(num_classes=10, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=16, crop_ratio_range=(0.7, 1.0),
         aspect_ratio_range=(0.8, 1.25)),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        custom_keys={'.cls_token': dict(decay_mult=0.0),
                                                     '.pos_embed': dict(decay_mult=0.0)}))
max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs, eta_min=1e-5, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=15)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=15, max_keep_ckpts=1, save_last=True))
