# NOSE on DeiT-Base with the selection on the fly for 5 layers (40%, the budget of
# deit-base_nose-0-1-3-4-6_8xb256-400e_in1k-224px.py), measured as the reference code
# measured it (selection preset 'reference', nose_mm/selection/presets.py): compensated
# skips (2x, then the MLP), 49,920 ImageNet val images, the entropy of the head input.
# 1 + 12 + 11 + 10 + 9 + 8 = 51 streamed passes over those images on rank 0 before
# training (see deit-small_nose-select-3-reference_8xb256-400e_in1k-224px.py for
# selecting once with tools/nose_select.py --preset reference instead).
_base_ = ['./deit-base_nose-0-1-3-4-6_8xb256-400e_in1k-224px.py']
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', preset='reference', num_layers=5, num_workers=8),
    dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True),
]
