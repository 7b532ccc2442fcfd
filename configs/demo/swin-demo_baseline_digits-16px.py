# A demo-sized Swin (NoseSwinTransformer) with Swin-T's depths (2, 2, 6, 2: layers
# 0-11) on the demo's 16 px digits: patch 2, window 2, so the four stages see 8x8,
# 4x4, 2x2 and 1x1 tokens (16, 4, 1, 1 windows, as Swin-T's 64, 16, 4, 1 at
# 224 px). configs/imagenet/README.md chose the Swin-T budget from a NOSE
# selection on this model.
_base_ = ['./deit-demo_baseline_digits-16px.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseSwinTransformer',
                  arch=dict(embed_dims=32, depths=[2, 2, 6, 2], num_heads=[1, 2, 4, 8]),
                  img_size=16, patch_size=2, window_size=2, pad_small_map=True,
                  drop_path_rate=0.0,
                  init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                            dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(_delete_=True, type='LinearClsHead', num_classes=10, in_channels=256,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.absolute_pos_embed': dict(decay_mult=0.0),
    '.relative_position_bias_table': dict(decay_mult=0.0)}))
