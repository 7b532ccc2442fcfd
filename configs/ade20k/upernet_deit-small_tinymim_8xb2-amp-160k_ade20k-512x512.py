# The authors' recipe on DeiT-S (see the DeiT-B config): 384-wide maps, UperHead channels
# = embed_dims as in the base config (768 there); layer decay 0.75 too: the value of
# TinyMIM's base config, used here for S (no small config of theirs states another).
_base_ = ['./upernet_deit-base_tinymim_8xb2-amp-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(arch='deit-small',
                  init_cfg=dict(checkpoint='checkpoints/deit-small_in1k_mae-512.pth')),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384] * 4, channels=384),
    auxiliary_head=dict(in_channels=384),
)
