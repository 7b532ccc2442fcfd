# DeiT-B (ImageNet-1k classifier, 224 px) for tools/benchmark.py: the model only
# (random weights; see deit-small_in1k.py). 86.57 M params, 17.58 GMACs.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['nose_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NoseVisionTransformer', arch='deit-base', img_size=224, patch_size=16,
                  drop_path_rate=0.1),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768,
              loss=dict(type='CrossEntropyLoss')),
)
