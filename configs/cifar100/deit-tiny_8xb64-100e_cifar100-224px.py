# DeiT-Tiny fine-tuned on CIFAR-100 at 224 px from the ImageNet-1k checkpoint
# (baseline): the DeiT-Base recipe with the arch, its head width and its checkpoint
# (the arch and width of ../_base_/models/nose-deit-tiny.py).
_base_ = ['./deit-base_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(arch='deit-tiny', init_cfg=dict(
    checkpoint='checkpoints/deit-tiny_in1k.pth')), head=dict(in_channels=192))
