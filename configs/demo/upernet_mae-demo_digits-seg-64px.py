# The demo's segmentation transfer in the authors' (TinyMIM) set-up: UperNet +
# Feature2Pyramid on a BEiT-style demo ViT (NoseMAE: q/v biases, relative position bias,
# layer scales 1.0) with layer-wise lr decay, on the digit canvases of
# upernet_deit-demo_digits-seg-64px.py. The backbone starts from a classification
# checkpoint converted by tools/convert/deit_to_mae.py (--img-size 64 --num-heads 4), or
# from scratch with init_cfg=None.
_base_ = ['./upernet_deit-demo_digits-seg-64px.py']
model = dict(
    backbone=dict(
        _delete_=True, type='NoseMAE', arch=dict(embed_dims=64, num_layers=6, num_heads=4),
        mlp_ratio=2,
        img_size=(64, 64), patch_size=4, qv_bias=True, init_values=1.0, drop_path_rate=0.0,
        norm_cfg=dict(type='LN', eps=1e-6), out_indices=[1, 2, 4, 5], final_norm=False,
        removed_layers=None, diluted_layers=None,
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    # features are at stride 4 (patch 4): the 1/2 .. 1/16 pyramid of the demo's DeiT
    # UperNet (the 512 px configs' [4, 2, 1, 0.5] on 1/16 maps give 1/4 .. 1/32)
    neck=dict(_delete_=True, type='Feature2Pyramid', embed_dim=64, rescales=[2, 1, 0.5, 0.25]),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(43, 43)),
)
optim_wrapper = dict(constructor='LayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(num_layers=6, layer_decay_rate=0.75))
