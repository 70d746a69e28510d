"""Built-in classifiers (timm architectures with one input channel)."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_classifiers(registry):
    registry.add("resnet50", "cxrbench.plugins.classifiers.timm_models:ResNet50",
                 summary="timm resnet50 (as the Nano Banana study)")
    registry.add("convnext_base", "cxrbench.plugins.classifiers.timm_models:ConvNeXtBase",
                 summary="timm convnext_base (as Khosravi et al.)")
    registry.add("densenet121", "cxrbench.plugins.classifiers.timm_models:DenseNet121",
                 summary="timm densenet121 (CheXNet)")
    registry.add("resnet18", "cxrbench.plugins.classifiers.timm_models:ResNet18",
                 summary="timm resnet18: a CPU-feasible baseline classifier")
    registry.add("tiny-cnn", "cxrbench.plugins.classifiers.timm_models:TinyCNN",
                 summary="tiny timm resnet for tests (seconds on a CPU)")
