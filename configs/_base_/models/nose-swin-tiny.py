# Swin-T classifier on NoseSwinTransformer (mmpretrain's swin_transformer/tiny_224
# model): with no diluted or removed layers it is exactly mmpretrain's
# SwinTransformer('tiny'). Layers are Swin blocks 0-11 (depths 2, 2, 6, 2).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NoseSwinTransformer', arch='tiny', img_size=224, drop_path_rate=0.2,
                  diluted_layers=None, removed_layers=None, compensate=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=768, init_cfg=None,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
              cal_acc=False),
    init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
              dict(type='Constant', layer='LayerNorm', val=1., bias=0.)],
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
