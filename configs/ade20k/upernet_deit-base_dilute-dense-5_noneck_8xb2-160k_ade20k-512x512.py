# The comparison at the budget of 5 attention layers (configs/ade20k/README.md, "Selected on
# the task"): the set selected densely on the ImageNet-pretrained backbone. Before
# training, NoseSelectionHook measures the transfer entropy of the backbone's
# out_indices features (patch tokens as samples, no trained head) on 64 training
# images through the test pipeline, as the backbone starts (init_cfg), and writes
# selection.json in the work dir; then the set is diluted as in the transferred
# config of this budget. Prune and test with removed_layers = its selection.
_base_ = ['./upernet_deit-base_noneck_8xb2-160k_ade20k-512x512.py']
selected_on = 'dense (ImageNet backbone)'
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', num_layers=5, features='dense', num_samples=64,
         batch_size=8, seed=0),
    # lam falls from 1 to 0 over the first 120k of the 160k iterations (the
    # reference's 299 of 400 epochs), then 40k iterations at lam = 0
    dict(type='DilutionHook', schedule='linear', begin=0, end=120000, by_epoch=False),
]
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', by_epoch=False,
                                     interval=16000, max_keep_ckpts=2))
find_unused_parameters = True  # attention of the diluted layers unused at lam = 0
