# DeiT-Base fine-tuned on CIFAR-100 at 224 px from the ImageNet-1k checkpoint
# (baseline). The recipe: ../_base_/cifar100_finetune_100e.py.
_base_ = [
    '../_base_/models/nose-deit-base.py',
    '../_base_/cifar100_finetune_100e.py',
]
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', prefix='backbone.',
                                checkpoint='checkpoints/deit-base_in1k.pth')),
    head=dict(num_classes=100),
    init_cfg=None,
)
