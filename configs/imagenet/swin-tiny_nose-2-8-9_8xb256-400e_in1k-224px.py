# NOSE dilution fine-tune of Swin-T removing the attention of blocks [2, 8, 9] (3 of
# 12, 25%; chosen by a NOSE selection on the demo-sized Swin, see README.md), with
# the reference NOSE recipe of ../_base_/nose_in1k_finetune_400e.py (Swin's own
# ImageNet augmentation is the same; Swin's no-decay keys added). tools/prune.py
# then gives the pruned model (./swin-tiny_nose-2-8-9-pruned_in1k-224px.py).
_base_ = [
    '../_base_/models/nose-swin-tiny.py',
    '../_base_/nose_in1k_finetune_400e.py',
]
model = dict(backbone=dict(diluted_layers=[2, 8, 9], compensate=True))
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0, custom_keys={
    '.absolute_pos_embed': dict(decay_mult=0.0),
    '.relative_position_bias_table': dict(decay_mult=0.0)}))
# The official Swin-T weights, converted: tools/convert/deit_to_mmpretrain.py
load_from = 'checkpoints/swin-tiny_in1k.pth'
