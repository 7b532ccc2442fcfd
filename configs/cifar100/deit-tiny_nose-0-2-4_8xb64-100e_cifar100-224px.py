# NOSE on CIFAR-100: DeiT-Tiny from the ImageNet-1k checkpoint, attention
# layers [0, 2, 4] (25%) diluted while fine-tuning. lam falls linearly to 0 at epoch 75
# (3/4 of training, as the reference's 299 of 400), so the last 25 epochs run
# at lam = 0; then tools/prune.py gives the pruned model
# (deit-tiny_nose-0-2-4-pruned_cifar100-224px.py).
# The DeiT-Small NOSE recipe with the DeiT-Tiny arch (as deit-tiny_8xb64-100e_cifar100-224px.py).
_base_ = ['./deit-small_nose-0-2-4_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(arch='deit-tiny', init_cfg=dict(
    checkpoint='checkpoints/deit-tiny_in1k.pth')), head=dict(in_channels=192))
