# The demo's segmentation dilution fine-tune (the comparison of sets chosen on the
# task and transferred from classification): starts from the trained demo UperNet
# (load_from, set by tools/demo.py), dilutes the attention layers of a selection
# file (NoseSelectionHook; tools/nose_select.py output: --features seg_logits on
# that UperNet, or the classification selection) and fades them to identity: lam
# falls linearly from 1 at iteration 0 to 0 at iteration 20, then 10 iterations at
# lam = 0. selected_on labels the leaderboard row (tools/demo.py sets it).
_base_ = ['./upernet_deit-demo_digits-seg-64px.py']
load_from = None  # tools/demo.py: work_dirs/demo/seg_baseline/iter_60.pth
selected_on = None  # tools/demo.py: how the set was chosen
model = dict(backbone=dict(init_cfg=None))  # every weight comes from load_from
custom_hooks = [
    dict(type='NoseSelectionHook', selection_file=None),  # tools/demo.py sets the file
    dict(type='DilutionHook', schedule='linear', begin=0, end=20, by_epoch=False),
]
max_iters = 30
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', by_epoch=False,
                                     interval=max_iters, max_keep_ckpts=1))
find_unused_parameters = True
