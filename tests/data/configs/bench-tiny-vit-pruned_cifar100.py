# bench-tiny-vit_cifar100.py with the attention of layers 0 and 2 removed.
_base_ = ['./bench-tiny-vit_cifar100.py']
model = dict(backbone=dict(removed_layers=[0, 2]))
