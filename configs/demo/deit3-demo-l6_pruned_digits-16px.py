# The demo family's pruned DeiT-III: removed attention layers from the selection
# (tools/demo.py passes model.backbone.removed_layers=[...]); weights from
# tools/prune.py. Used by tools/test.py and tools/benchmark.py.
_base_ = ['./deit3-demo-l6_baseline_digits-16px.py']
model = dict(backbone=dict(removed_layers=[1, 3], compensate=True, init_cfg=None))
