# Paper Fig. 3 baseline: the NOSE recipe of deit-tiny_nose-0-2-4-6_8xb256-400e_in1k-224px.py
# (same budget, K = 4) diluting the first 4 layers (layers 0..3, the "bottom layers" baseline)
# instead of the layers NOSE selected. NoseSelectionHook picks them before training
# and writes selection.json in the work dir; no calibration data is used.
_base_ = ['./deit-tiny_nose-0-2-4-6_8xb256-400e_in1k-224px.py']
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', num_layers=4, method='first', seed=0),
    dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True),
]
