"""Built-in cxrbench plugins. They register through the `cxrbench` entry-point group exactly
as third-party plugins do (see pyproject.toml), one module per extension kind.

The generators, datasets, classifiers, post-processors and segmenters are listed once, in
:data:`BUILTINS`; each kind's package registers its rows with :func:`register_builtins`.
Registration is by lazy ``"module:Class"`` reference, so `cxrbench plugins` imports no plugin
module (nor torch).
"""

#: (kind, name, lazy "module:Class" reference, summary shown by `cxrbench plugins`)
BUILTINS = (
    ("generators", "real", "cxrbench.plugins.generators.real:RealGenerator",
     "reference ceiling: real training images matching each condition"),
    ("generators", "noise", "cxrbench.plugins.generators.noise:NoiseGenerator",
     "reference floor: structured noise that ignores the condition"),
    ("generators", "ddpm", "cxrbench.plugins.generators.ddpm:DDPMGenerator",
     "conditional DDPM (diffusers UNet2DModel) with classifier-free guidance"),
    ("generators", "gan", "cxrbench.plugins.generators.gan:GANGenerator",
     "conditional GAN: projection discriminator, hinge loss, R1, DiffAugment"),
    ("generators", "ldm", "cxrbench.plugins.generators.ldm:LDMGenerator",
     "latent diffusion (AutoencoderKL + conditional UNet), lung-mask conditioned"),
    ("generators", "api", "cxrbench.plugins.generators.api:ApiGenerator",
     "hosted image model (Gemini 'Nano Banana', OpenAI images) from text prompts; key from an env variable"),
    ("datasets", "phantom", "cxrbench.plugins.datasets.phantom:PhantomDataset",
     "embedded, procedurally SIMULATED radiograph-like images (not clinical data)"),
    ("datasets", "kermany", "cxrbench.plugins.datasets.kermany:KermanyDataset",
     "Kermany pediatric CXR (chest_xray/{train,val,test}/{NORMAL,PNEUMONIA})"),
    ("datasets", "rsna-pneumonia", "cxrbench.plugins.datasets.rsna:RSNAPneumoniaDataset",
     "RSNA 2018 Pneumonia Detection (DICOM + stage_2 CSVs, boxes as masks)"),
    ("datasets", "chexpert", "cxrbench.plugins.datasets.chexpert:CheXpertDataset",
     "CheXpert v1.0 (14 labels, uncertainty rule of Khosravi et al.)"),
    ("datasets", "mimic-cxr", "cxrbench.plugins.datasets.mimic:MimicCXRDataset",
     "MIMIC-CXR-JPG (CheXpert labels, official split, frontal views)"),
    ("datasets", "nih-cxr14", "cxrbench.plugins.datasets.nih:NIHChestXray14Dataset",
     "NIH ChestX-ray14 (Data_Entry_2017.csv, official train/test lists)"),
    ("datasets", "covid-chestxray", "cxrbench.plugins.datasets.covid_chestxray:CovidChestXrayDataset",
     "COVID-19 image data collection (metadata.csv + images/; frontal X-rays, external test set)"),
    ("datasets", "jsrt", "cxrbench.plugins.datasets.jsrt:JSRTDataset",
     "JSRT 247 CXRs with SCR lung-field masks (segmentation; nodule label): 512 px copy or All247images/*.IMG"),
    ("datasets", "pneumoniamnist", "cxrbench.plugins.datasets.pneumoniamnist:PneumoniaMNISTDataset",
     "PneumoniaMNIST (medmnist npz, 28/64/128/224 px, official splits)"),
    ("classifiers", "resnet50", "cxrbench.plugins.classifiers.timm_models:ResNet50",
     "timm resnet50 (as the Nano Banana study)"),
    ("classifiers", "convnext_base", "cxrbench.plugins.classifiers.timm_models:ConvNeXtBase",
     "timm convnext_base (as Khosravi et al.)"),
    ("classifiers", "densenet121", "cxrbench.plugins.classifiers.timm_models:DenseNet121",
     "timm densenet121 (CheXNet)"),
    ("classifiers", "resnet18", "cxrbench.plugins.classifiers.timm_models:ResNet18",
     "timm resnet18: a CPU-feasible baseline classifier"),
    ("classifiers", "tiny-cnn", "cxrbench.plugins.classifiers.timm_models:TinyCNN",
     "tiny timm resnet for tests (seconds on a CPU)"),
    ("postprocessors", "equalize", "cxrbench.plugins.postprocessors.basic:Equalize",
     "histogram equalization to 256 bins (matches the real-data preprocessing)"),
    ("postprocessors", "crop-border", "cxrbench.plugins.postprocessors.basic:CropBorder",
     "crop a border (e.g. a watermark strip) and resize back"),
    ("postprocessors", "proxy-filter", "cxrbench.plugins.postprocessors.proxy_filter:ProxyFilter",
     "drop images a real-data proxy classifier labels against their condition"),
    ("postprocessors", "crop-watermark", "cxrbench.plugins.postprocessors.hosted:CropWatermark",
     "crop a frame and corner marks (hosted models' watermarks), detected or fixed, then fit back"),
    ("postprocessors", "grayscale", "cxrbench.plugins.postprocessors.hosted:Grayscale",
     "grey-level normalisation of hosted renderings: negatives inverted, percentile stretch"),
    ("postprocessors", "resize-pad", "cxrbench.plugins.postprocessors.hosted:ResizePad",
     "aspect-preserving fit of the content with centred zero padding, as the loaders"),
    ("postprocessors", "lung-crop", "cxrbench.plugins.postprocessors.lung_crop:LungCrop",
     "crop to the estimated lung fields plus a margin, then fit back"),
    ("segmenters", "unet-resnet18", "cxrbench.plugins.segmenters.unet:UnetResNet18",
     "smp U-Net, ResNet-18 encoder, one input channel (any size: padded to 32, cropped back)"),
    ("segmenters", "unet-resnet34", "cxrbench.plugins.segmenters.unet:UnetResNet34",
     "smp U-Net, ResNet-34 encoder, one input channel (any size: padded to 32, cropped back)"),
    ("segmenters", "tiny-unet", "cxrbench.plugins.segmenters.unet:TinyUnet",
     "tiny plain-torch U-Net for tests (about 7k parameters, seconds on a CPU)"),
)


def register_builtins(registry, kind: str) -> None:
    """Add every :data:`BUILTINS` row of ``kind`` to ``registry``, in the table's order."""
    for row_kind, name, target, summary in BUILTINS:
        if row_kind == kind:
            registry.add(name, target, summary=summary)
