# The pruned DeiT-III-Small (attention layers [3, 5, 7] removed: MLP-only blocks),
# for evaluating / benchmarking checkpoints written by tools/prune.py:
#   python tools/test.py configs/imagenet/deit3-small_nose-3-5-7-pruned_in1k-224px.py PRUNED.pth
_base_ = ['./deit3-small_64xb64_in1k-224px.py']
model = dict(backbone=dict(removed_layers=[3, 5, 7], compensate=True))
