# mmseg's UperNet + MultiLevelNeck with a DeiT-Base backbone on ADE20k, 512 x 512,
# 160k iterations at batch 8 x 2, mmseg's ViT/DeiT schedule (AdamW 6e-5, poly).
# The backbone starts from the ImageNet-1k DeiT checkpoint (backbone.* keys).
_base_ = [
    '../_base_/models/upernet_nose-deit.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]
model = dict(
    backbone=dict(arch='deit-base',
                  init_cfg=dict(checkpoint='checkpoints/deit-base_in1k.pth')),
    neck=dict(in_channels=[768] * 4, out_channels=768),
    decode_head=dict(in_channels=[768] * 4),
    auxiliary_head=dict(in_channels=768),
)
train_dataloader = dict(batch_size=2)
