# NOSE dilution fine-tune of DeiT-Tiny removing attention layers [0, 2, 4] (25%),
# the reference recipe of ../_base_/nose_in1k_finetune_400e.py; tools/prune.py then
# gives the pruned model (configs/imagenet/deit-tiny_nose-0-2-4-pruned_in1k-224px.py).
_base_ = [
    '../_base_/models/nose-deit-tiny.py',
    '../_base_/nose_in1k_finetune_400e.py',
]
model = dict(backbone=dict(diluted_layers=[0, 2, 4], compensate=True))
# The official DeiT weights, converted: tools/convert/deit_to_mmpretrain.py
load_from = 'checkpoints/deit-tiny_in1k.pth'
