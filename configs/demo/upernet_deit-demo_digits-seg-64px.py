# The demo's segmentation transfer: UperNet + MultiLevelNeck on the demo ViT,
# on digit canvases in the ADE20k layout (tools/demo.py writes them under
# data/digits_seg). Each pixel is background or its digit's class. The backbone
# starts from a classification checkpoint (tools/demo.py sets
# model.backbone.init_cfg.checkpoint and, for a pruned one,
# model.backbone.removed_layers).
_base_ = ['../_base_/seg_runtime.py']
custom_imports = dict(imports=['nose_mm'], allow_failed_imports=False)
data_root = 'data/digits_seg/ADEChallengeData2016'
classes = ('background', 'digit_0', 'digit_1', 'digit_2', 'digit_3', 'digit_4', 'digit_5',
           'digit_6', 'digit_7', 'digit_8', 'digit_9')
crop_size = (64, 64)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3,
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size),
    backbone=dict(
        type='NoseVisionTransformer',
        arch=dict(embed_dims=64, num_layers=6, num_heads=4, feedforward_channels=128),
        img_size=64, patch_size=4, out_type='featmap', out_indices=(1, 2, 4, 5),
        final_norm=False, drop_path_rate=0.0, removed_layers=None,
        # strict fit on the backbone.* keys; final_norm=False: the classifier's
        # final norm (ln1.*) is not used here
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=None,
                      ignore_keys=[r'ln1\..*'])),
    # features are at stride 4 (patch 4): a 1/2 .. 1/16 pyramid
    neck=dict(type='MultiLevelNeck', in_channels=[64] * 4, out_channels=64,
              scales=[2, 1, 0.5, 0.25]),
    decode_head=dict(type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3],
                     pool_scales=(1, 2, 3, 6), channels=64, dropout_ratio=0.1,
                     num_classes=len(classes), norm_cfg=norm_cfg, align_corners=False,
                     # digit strokes cover ~7% of a canvas: down-weight background
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0,
                                      class_weight=[0.2] + [1.0] * (len(classes) - 1))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
dataset = dict(type='BaseSegDataset', data_root=data_root, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True,
               metainfo=dict(classes=classes))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.0),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training')))
val_dataloader = dict(
    batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 60  # keeps the whole demo (4 UperNet runs) within 10 minutes on 2 cores
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=15, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False),
    results=dict(type='ResultsHook'),  # what every nose_mm run has (seg_adamw_160k.py)
    divergence=dict(type='DivergenceHook'),
    random_state=dict(type='RandomStateHook'))
