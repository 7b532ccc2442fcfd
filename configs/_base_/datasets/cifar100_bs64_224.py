# CIFAR-100 up-sampled to 224 px for fine-tuning ImageNet-pretrained ViTs.
# Data: <data_root>/cifar-100-python/{train,test,meta} (the official python
# pickles; see configs/cifar100/README.md). Nothing is downloaded.
dataset_type = 'NoseCIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(
    num_classes=100,
    # CIFAR-100 statistics (RGB, 0-255)
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    to_rgb=False,  # the pickles are already RGB
)

train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', download=False,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', download=False,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
