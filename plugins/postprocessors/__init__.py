"""Built-in post-processors (steps of the ordered chain applied to synthetic images)."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_postprocessors(registry):
    registry.add("equalize", "cxrbench.plugins.postprocessors.basic:Equalize",
                 summary="histogram equalization to 256 bins (matches the real-data preprocessing)")
    registry.add("crop-border", "cxrbench.plugins.postprocessors.basic:CropBorder",
                 summary="crop a border (e.g. a watermark strip) and resize back")
    registry.add("proxy-filter", "cxrbench.plugins.postprocessors.proxy_filter:ProxyFilter",
                 summary="drop images a real-data proxy classifier labels against their condition")
    registry.add("crop-watermark", "cxrbench.plugins.postprocessors.hosted:CropWatermark",
                 summary="crop a frame and corner marks (hosted models' watermarks), detected or fixed, then fit back")
    registry.add("resize-pad", "cxrbench.plugins.postprocessors.hosted:ResizePad",
                 summary="aspect-preserving fit of the content with centred zero padding, as the loaders")
    registry.add("lung-crop", "cxrbench.plugins.postprocessors.lung_crop:LungCrop",
                 summary="crop to the estimated lung fields plus a margin, then fit back")
