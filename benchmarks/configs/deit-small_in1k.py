# DeiT-S (ImageNet-1k classifier, 224 px) for tools/benchmark.py: the model only.
# Speed, FLOPs and parameters do not depend on the weights, so none are loaded
# (pass a CHECKPOINT to tools/benchmark.py to measure trained weights).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['nose_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NoseVisionTransformer', arch='deit-small', img_size=224, patch_size=16,
                  drop_path_rate=0.1),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=384,
              loss=dict(type='CrossEntropyLoss')),
)
