# A tiny UperNet + MultiLevelNeck on an ADE20k-layout set at 64 px: mmseg's real
# dataset class, metric and heads, sized for tests on 2 CPU cores.
_base_ = [
    '../../../configs/_base_/datasets/ade20k_512x512.py',
    '../../../configs/_base_/seg_runtime.py',
    '../../../configs/_base_/schedules/seg_adamw_160k.py',
]
crop_size = (64, 64)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size=crop_size),
    backbone=dict(type='mmpretrain.VisionTransformer',
                  arch=dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
                  img_size=64, patch_size=8, out_type='featmap', out_indices=(0, 1, 2, 3),
                  drop_path_rate=0.0, final_norm=False),
    neck=dict(type='MultiLevelNeck', in_channels=[32] * 4, out_channels=32,
              scales=[4, 2, 1, 0.5]),
    decode_head=dict(type='UPerHead', in_channels=[32] * 4, in_index=[0, 1, 2, 3],
                     pool_scales=(1, 2, 3, 6), channels=32, dropout_ratio=0.1,
                     num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=3, channels=16, num_convs=1,
                        concat_input=False, dropout_ratio=0.1, num_classes=150,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=3),
                     visualization=dict(type='SegVisualizationHook', draw=False))
