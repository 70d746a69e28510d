"""Built-in datasets: the real chest X-ray sets of the field and one embedded simulated set."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_datasets(registry):
    registry.add("phantom", "cxrbench.plugins.datasets.phantom:PhantomDataset",
                 summary="embedded, procedurally SIMULATED radiograph-like images (not clinical data)")
    registry.add("kermany", "cxrbench.plugins.datasets.kermany:KermanyDataset",
                 summary="Kermany pediatric CXR (chest_xray/{train,val,test}/{NORMAL,PNEUMONIA})")
    registry.add("rsna-pneumonia", "cxrbench.plugins.datasets.rsna:RSNAPneumoniaDataset",
                 summary="RSNA 2018 Pneumonia Detection (DICOM + stage_2 CSVs, boxes as masks)")
    registry.add("chexpert", "cxrbench.plugins.datasets.chexpert:CheXpertDataset",
                 summary="CheXpert v1.0 (14 labels, uncertainty rule of Khosravi et al.)")
    registry.add("mimic-cxr", "cxrbench.plugins.datasets.mimic:MimicCXRDataset",
                 summary="MIMIC-CXR-JPG (CheXpert labels, official split, frontal views)")
    registry.add("nih-cxr14", "cxrbench.plugins.datasets.nih:NIHChestXray14Dataset",
                 summary="NIH ChestX-ray14 (Data_Entry_2017.csv, official train/test lists)")
    registry.add("pneumoniamnist", "cxrbench.plugins.datasets.pneumoniamnist:PneumoniaMNISTDataset",
                 summary="PneumoniaMNIST (medmnist npz, 28/64/128/224 px, official splits)")
