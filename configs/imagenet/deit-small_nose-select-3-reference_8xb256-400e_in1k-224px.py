# NOSE with the selection on the fly, measured as the reference code measured it
# (selection preset 'reference', nose_mm/selection/presets.py): a skipped attention
# leaves 2x before the block's MLP (its shrink model), 49,920 ImageNet val images
# (130 eval batches of 384), the entropy of the head input. The paper's definition
# (identity skips, training images) is deit-small_nose-select-3_8xb256-400e_in1k-224px.py.
# The full passes stream the images (nothing kept): 1 + 12 + 11 + 10 = 34 passes over
# 49,920 images on rank 0 before training, the other ranks waiting at a broadcast; where
# that outlasts the process group's timeout, select once with
#   python tools/nose_select.py CONFIG checkpoints/deit-small_in1k.pth -k 3 --preset reference
# and give the file as NoseSelectionHook(selection_file=...). Then the same dilution schedule.
_base_ = ['./deit-small_nose-0-2-4_8xb256-400e_in1k-224px.py']
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', preset='reference', num_layers=3, num_workers=8),
    dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True),
]
