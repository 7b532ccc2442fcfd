# The comparison at the budget of 6 attention layers (configs/ade20k/README.md, "Selected on
# the task"): deit-base UperNet with the set NOSE selected on the ImageNet classifier
# ([0, 1, 3, 4, 6, 9], the paper's transfer), trained by the same ADE20k dilution recipe as the
# task-selected sets: from the unpruned ImageNet backbone, the set's attention faded
# to identity, then tools/prune.py and tools/test.py with removed_layers=[0, 1, 3, 4, 6, 9].
_base_ = ['./upernet_deit-base_noneck_8xb2-160k_ade20k-512x512.py']
selected_on = 'transferred (ImageNet classifier)'
model = dict(backbone=dict(diluted_layers=[0, 1, 3, 4, 6, 9]))
custom_hooks = [
    # lam falls from 1 to 0 over the first 120k of the 160k iterations (the
    # reference's 299 of 400 epochs), then 40k iterations at lam = 0
    dict(type='DilutionHook', schedule='linear', begin=0, end=120000, by_epoch=False),
]
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', by_epoch=False,
                                     interval=16000, max_keep_ckpts=2))
find_unused_parameters = True  # attention of the diluted layers unused at lam = 0
