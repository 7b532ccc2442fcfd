# NOSE dilution fine-tune of DeiT-Base removing attention layers [0, 1, 3, 4, 6, 9] (50%),
# the reference recipe of ../_base_/nose_in1k_finetune_400e.py; tools/prune.py then
# gives the pruned model (configs/imagenet/deit-base_nose-0-1-3-4-6-9-pruned_in1k-224px.py).
_base_ = [
    '../_base_/models/nose-deit-base.py',
    '../_base_/nose_in1k_finetune_400e.py',
]
# The reference's DeiT-B (models_v4.py) uses drop path 0.1 in every block.
model = dict(backbone=dict(diluted_layers=[0, 1, 3, 4, 6, 9], compensate=True,
                           drop_path_mode='constant'))
# The official DeiT weights, converted: tools/convert/deit_to_mmpretrain.py
load_from = 'checkpoints/deit-base_in1k.pth'
