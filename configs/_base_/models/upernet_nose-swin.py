# mmseg's UperNet on a NoseSwinTransformer backbone (mmseg's upernet_swin model):
# the heads of ./upernet_nose-deit.py, but no neck: the 4 normed stage outputs
# (Swin-T: 96-768 channels) go straight into UPerHead; FCN auxiliary head on stage
# 3. The backbone is mmpretrain's Swin (registered for mmseg too), initialised
# from a classification checkpoint (backbone.* keys) through init_cfg; a pruned
# backbone needs a pruned checkpoint with the same removed_layers, otherwise
# loading fails naming the layers that differ. The classifier has only the last
# stage's norm (norm3); norm0-2 of the segmentation outputs start fresh.
_base_ = ['./upernet_nose-deit.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseSwinTransformer', arch='tiny', img_size=224,
                  patch_size=4, window_size=7, out_indices=(0, 1, 2, 3), drop_path_rate=0.3,
                  use_abs_pos_embed=False, removed_layers=None, compensate=True,
                  # strict fit on the backbone.* keys but the norms the classifier lacks
                  init_cfg=dict(type='Pretrained', prefix='backbone.',
                                checkpoint='checkpoints/swin-tiny_in1k.pth',
                                ignore_keys=[r'norm[012]\..*'])),
    neck=None,
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384, in_index=2),
)
