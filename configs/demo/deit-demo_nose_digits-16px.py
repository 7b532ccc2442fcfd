# The demo's dilution fine-tune: starts from the trained baseline (load_from,
# set by tools/demo.py), dilutes the attention layers of a selection file
# (NOSE, random or first-K: tools/nose_select.py output, given to
# NoseSelectionHook) and fades them to identity: lam falls linearly from 1 at
# epoch 0 to 0 at epoch 7, then 5 epochs run at lam = 0 (pruned speed).
_base_ = ['./deit-demo_baseline_digits-16px.py']
load_from = None  # tools/demo.py: work_dirs/demo/baseline/seed0/epoch_30.pth
custom_hooks = [
    dict(type='NoseSelectionHook', selection_file=None),  # tools/demo.py sets the file
    dict(type='DilutionHook', schedule='linear', begin=0, end=7, by_epoch=True),
]
optim_wrapper = dict(optimizer=dict(lr=5e-4))
max_epochs = 12
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=6)
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', interval=12,
                                     max_keep_ckpts=1, save_last=True))
find_unused_parameters = True
