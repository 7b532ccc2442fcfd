# The pruned DeiT-Small (attention layers [0, 2, 4, 6] removed: MLP-only blocks), for
# evaluating / benchmarking checkpoints written by tools/prune.py:
#   python tools/test.py configs/imagenet/deit-small_nose-0-2-4-6-pruned_in1k-224px.py PRUNED.pth
_base_ = ['./deit-small_8xb128-300e_in1k-224px.py']
model = dict(backbone=dict(removed_layers=[0, 2, 4, 6], compensate=True))
