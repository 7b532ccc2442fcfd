# The comparison at the budget of 5 attention layers (configs/ade20k/README.md, "Selected on
# the task"): the set selected on a trained baseline UperNet
# (upernet_deit-base_noneck_8xb2-160k_ade20k-512x512.py):
# the transfer entropy of its decode head's per-pixel output on 64 training images,
#   python tools/nose_select.py \
#       configs/ade20k/upernet_deit-base_noneck_8xb2-160k_ade20k-512x512.py \
#       work_dirs/upernet_deit-base_noneck_8xb2-160k_ade20k-512x512/iter_160000.pth \
#       --features seg_logits -k 5 -n 64 --batch-size 8 \
#       --out work_dirs/selection/deit-base_noneck_seg_logits-5.json
# then the same dilution recipe as the transferred and dense configs of this budget
# (from the unpruned ImageNet backbone). Prune and test with removed_layers = the
# selection.
_base_ = ['./upernet_deit-base_noneck_8xb2-160k_ade20k-512x512.py']
selected_on = 'seg_logits (trained UperNet)'
model = dict(backbone=dict(diluted_layers=None))
custom_hooks = [
    dict(type='NoseSelectionHook', num_layers=5,
         selection_file='work_dirs/selection/deit-base_noneck_seg_logits-5.json'),
    # lam falls from 1 to 0 over the first 120k of the 160k iterations (the
    # reference's 299 of 400 epochs), then 40k iterations at lam = 0
    dict(type='DilutionHook', schedule='linear', begin=0, end=120000, by_epoch=False),
]
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', by_epoch=False,
                                     interval=16000, max_keep_ckpts=2))
find_unused_parameters = True  # attention of the diluted layers unused at lam = 0
