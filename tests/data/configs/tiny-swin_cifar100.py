# A tiny Swin (NoseSwinTransformer, 3 stages of 2 blocks: layers 0-5) on CIFAR-100 at
# 32 px: 8x8, 4x4 and 2x2 tokens, 2x2 windows (shifted in the first two stages).
_base_ = ['./tiny-vit_cifar100.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseSwinTransformer',
                  arch=dict(embed_dims=16, depths=[2, 2, 2], num_heads=[1, 2, 4]),
                  img_size=32, patch_size=4, window_size=2, out_indices=(2, ),
                  drop_path_rate=0.0),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(_delete_=True, type='LinearClsHead', num_classes=100, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
