# The demo family's dilution fine-tune: the demo ViT's recipe
# (deit-demo_nose_digits-16px.py: NoseSelectionHook + DilutionHook, lam 1 -> 0
# over the first epochs, then epochs at lam = 0) on the demo DeiT-III
# (deit3-demo-l6_baseline_digits-16px.py), starting from its trained baseline
# (load_from, set by tools/demo.py).
_base_ = ['./deit-demo_nose_digits-16px.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseDeiT3',
                  arch=dict(embed_dims=64, num_layers=6, num_heads=4,
                            feedforward_channels=128),
                  img_size=16, patch_size=4, drop_path_rate=0.0, init_cfg=None))
