# The authors' ADE20k model (TinyMIM's segmentation code, configs/ade20k/README.md):
# UperNet on a BEiT-style ViT (NoseMAE: mmseg's MAE with q/v biases, relative position
# bias tables, layer scales, absolute position embedding) reading blocks [3, 5, 7, 11]
# through mmseg's Feature2Pyramid (deconv x4, deconv x2, identity, max-pool). DeiT-B sizes
# here; the DeiT-S configs override the widths. The backbone starts from an ImageNet DeiT
# converted by tools/convert/deit_to_mae.py (bias tables zero, layer scales 1: at
# initialisation it computes the DeiT), loaded strictly (bare backbone keys).
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                         seg_pad_val=255, size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='NoseMAE', arch='deit-base', img_size=(512, 512), patch_size=16,
                  qv_bias=True, init_values=1.0, drop_path_rate=0.1,
                  norm_cfg=dict(type='LN', eps=1e-6), out_indices=[3, 5, 7, 11],
                  final_norm=False, removed_layers=None, compensate=True,
                  init_cfg=dict(type='Pretrained',
                                checkpoint='checkpoints/deit-base_in1k_mae-512.pth')),
    neck=dict(type='Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(type='UPerHead', in_channels=[768] * 4, in_index=[0, 1, 2, 3],
                     pool_scales=(1, 2, 3, 6), channels=768, dropout_ratio=0.1,
                     num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=768, in_index=2, channels=256,
                        num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=150,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)
