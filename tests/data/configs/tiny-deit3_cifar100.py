# A tiny DeiT-III (official block: NoseDeiT3) on CIFAR-100 at 32 px, sized for tests.
_base_ = ['./tiny-vit_cifar100.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseDeiT3',
                  arch=dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=8, drop_path_rate=0.0),
    head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=32))
