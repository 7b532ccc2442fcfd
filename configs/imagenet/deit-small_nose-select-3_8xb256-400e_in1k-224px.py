# NOSE with the selection on the fly: before training, NoseSelectionHook runs
# the transfer-entropy greedy search on N training images with the pretrained
# weights (rank 0, broadcast to all ranks), fixes the backbone's diluted layers
# and saves selection.json in the work dir (reused on resume). Then the same
# dilution schedule as the fixed-layer configs.
_base_ = ['./deit-small_nose-0-2-4_8xb256-400e_in1k-224px.py']
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', num_layers=3, num_samples=2048, method='nose',
         criterion='abs', batch_size=64, seed=0),
    dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True),
]
