# mmseg UperNet + MultiLevelNeck on a NoseVisionTransformer backbone (DeiT-S
# sizes here; the DeiT-B configs override the widths). The backbone is
# initialised from a classification checkpoint (backbone.* keys) through
# init_cfg; a pruned backbone needs a pruned checkpoint with the same
# removed_layers, otherwise loading fails naming the layers that differ.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                         seg_pad_val=255, size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='NoseVisionTransformer', arch='deit-small', img_size=(512, 512),
                  patch_size=16, out_type='featmap', out_indices=(2, 5, 8, 11),
                  drop_path_rate=0.1, final_norm=False, interpolate_mode='bicubic',
                  removed_layers=None, compensate=True,
                  # strict fit on the backbone.* keys; final_norm=False: the
                  # classifier's final norm (ln1.*) is not used here
                  init_cfg=dict(type='Pretrained', prefix='backbone.',
                                checkpoint='checkpoints/deit-small_in1k.pth',
                                ignore_keys=[r'ln1\..*'])),
    neck=dict(type='MultiLevelNeck', in_channels=[384] * 4, out_channels=384,
              scales=[4, 2, 1, 0.5]),
    decode_head=dict(type='UPerHead', in_channels=[384] * 4, in_index=[0, 1, 2, 3],
                     pool_scales=(1, 2, 3, 6), channels=512, dropout_ratio=0.1,
                     num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=384, in_index=3, channels=256,
                        num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=150,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
