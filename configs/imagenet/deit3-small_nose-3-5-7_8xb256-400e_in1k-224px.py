# NOSE dilution fine-tune of DeiT-III-Small removing attention layers [3, 5, 7] (3 of
# 12, 25%; chosen by a NOSE selection on the demo-sized DeiT-III, see README.md),
# with the reference NOSE recipe of ../_base_/nose_in1k_finetune_400e.py (DeiT
# augmentation and AdamW schedule; DeiT-III's own LAMB / 3-Augment recipe is a
# pre-training recipe), evaluated as DeiT-III is (crop ratio 1.0). tools/prune.py
# then gives the pruned model (./deit3-small_nose-3-5-7-pruned_in1k-224px.py).
_base_ = [
    '../_base_/models/nose-deit3-small.py',
    '../_base_/nose_in1k_finetune_400e.py',
]
model = dict(backbone=dict(diluted_layers=[3, 5, 7], compensate=True))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]))
test_dataloader = val_dataloader
# The official DeiT-III weights (timm deit3_small_patch16_224), converted:
# tools/convert/deit_to_mmpretrain.py
load_from = 'checkpoints/deit3-small_in1k.pth'
