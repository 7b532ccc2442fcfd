# mmseg's UperNet + MultiLevelNeck with a DeiT-Small backbone on ADE20k, 512 x 512,
# 160k iterations at batch 8 x 2, mmseg's ViT/DeiT schedule (AdamW 6e-5, poly).
# The backbone starts from the ImageNet-1k DeiT checkpoint (backbone.* keys).
# The DeiT-Base recipe with the DeiT-Small arch, its width (384) and its checkpoint.
_base_ = ['./upernet_deit-base_mln_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(arch='deit-small', init_cfg=dict(checkpoint='checkpoints/deit-small_in1k.pth')),
    neck=dict(in_channels=[384] * 4, out_channels=384),
    decode_head=dict(in_channels=[384] * 4),
    auxiliary_head=dict(in_channels=384),
)
