"""The DICOM objects a finished series sends back to the PACS besides its DICOM-SEG (export.py): a
TID 1500 measurement report (highdicom SR) and one Secondary Capture of the annotated key slice.

No Django.  The figures come from the series JSON (`SeriesResult.to_dict()`, or a job's stored
result), so the SR says exactly what the page and the API say.  UIDs are derived from the SEG's
SOP Instance UID: sending the same result again stores the same instances, never duplicates.
"""
from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .export import SOFTWARE, VERSION
from .slice_view import render_slice
from .volume import SeriesVolume

# Units (UCUM) and concepts without a standard code: the app's own coding scheme.
ML = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
MM = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
SCHEME = "99TUMORAPP"
TUMOR_VOLUME = hd.sr.CodedConcept("tumour-volume", SCHEME, "Total tumour volume")
TUMOR_BURDEN = hd.sr.CodedConcept("tumour-burden", SCHEME, "Tumour burden (tumour / liver volume)")
STAGE = hd.sr.CodedConcept("size-stage", SCHEME, "Size-based stage estimate (not a clinical stage)")
LOBES = {"right": hd.sr.CodedConcept("72481006", "SCT", "Right lobe of liver"),
         "left": hd.sr.CodedConcept("41801008", "SCT", "Left lobe of liver")}
PARTS = {"anterior": codes.SCT.Anterior, "posterior": codes.SCT.Posterior}
SR_SERIES_OFFSET, KEY_SERIES_OFFSET = 1001, 1002  # series numbers after the SEG's (+1000)


def _uid(seg_uid: str, *what: str) -> str:
    return generate_uid(entropy_srcs=[seg_uid, *what])


def stage_concept(stage: str | None) -> hd.sr.CodedConcept:
    if stage:
        return hd.sr.CodedConcept(f"stage-{stage}", SCHEME, f"Stage {stage}")
    return hd.sr.CodedConcept("no-tumour", SCHEME, "No tumour detected")


def structured_report(volume: SeriesVolume, record: dict, seg: Dataset) -> hd.sr.Comprehensive3DSR:
    """TID 1500: one volumetric group per lesion (volume, longest axial diameter, lobe and part, the
    SEG's tumour segment) and one liver group (liver and tumour volume, burden, stage)."""
    seg_uid = str(seg.SOPInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(name=SOFTWARE, version=VERSION)
    groups = []
    for n, lesion in enumerate(record.get("lesions", []), start=1):
        site = hd.sr.FindingSite(anatomic_location=LOBES[lesion["side"]],
                                 topographical_modifier=PARTS[lesion["part"]])
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seg_uid, "lesion", str(n)), identifier=f"Lesion {n}"),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=2),
            finding_type=codes.SCT.Neoplasm,
            finding_category=codes.SCT.MorphologicallyAbnormalStructure,
            algorithm_id=algorithm,
            finding_sites=[site],
            measurements=[
                hd.sr.Measurement(name=codes.SCT.Volume, value=lesion["volume_ml"], unit=ML, algorithm_id=algorithm),
                # Longest axial diameter: the largest in-plane Feret diameter over the lesion's slices.
                hd.sr.Measurement(name=codes.SCT.LongAxis, value=lesion["max_diameter_mm"], unit=MM,
                                  algorithm_id=algorithm),
            ],
        ))
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seg_uid, "liver"), identifier="Liver"),
        finding_type=codes.SCT.Liver,
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Volume, value=record["liver_volume_ml"], unit=ML, algorithm_id=algorithm),
            hd.sr.Measurement(name=TUMOR_VOLUME, value=record["tumor_volume_ml"], unit=ML, algorithm_id=algorithm),
            hd.sr.Measurement(name=TUMOR_BURDEN, value=record["tumor_burden_percent"], unit=PERCENT,
                              algorithm_id=algorithm),
        ],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=STAGE, value=stage_concept(record.get("stage")))],
    ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid(seg_uid, "device"), name=SOFTWARE))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=groups,
    )
    # Evidence: the SEG and every source slice, so the SR references both series.
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *volume.datasets],
        content=report[0],
        series_instance_uid=_uid(seg_uid, "sr-series"),
        series_number=int(getattr(volume.datasets[0], "SeriesNumber", 0) or 0) + SR_SERIES_OFFSET,
        sop_instance_uid=_uid(seg_uid, "sr"),
        instance_number=1,
        manufacturer="TumorApp",
        series_description="Liver tumour measurements (research use only)",
        is_complete=True,
    )


def key_slice(record: dict, labels: np.ndarray) -> int:
    """The largest lesion's longest-diameter slice; without lesions the liver's middle slice."""
    lesions = record.get("lesions") or []
    if lesions:
        return int(lesions[0]["max_diameter_slice"])
    with_liver = np.flatnonzero((np.asarray(labels) > 0).any(axis=(1, 2)))
    return int(with_liver[len(with_liver) // 2]) if with_liver.size else labels.shape[0] // 2


def key_image(volume: SeriesVolume, record: dict, ct: np.ndarray, labels: np.ndarray, seg_uid: str) -> Dataset:
    """A Secondary Capture (RGB) of the key slice with the outlines and one line of figures burnt in, for
    viewers that cannot overlay a SEG.  Pixels are in the analysis's radiological orientation."""
    k = key_slice(record, labels)
    png = render_slice(np.asarray(ct[k]), np.asarray(labels[k]), "abdomen")
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    stage = f"Stage {record['stage']} (size estimate)" if record.get("stage") else "No tumour detected"
    text = f"{stage}; {len(record.get('lesions', []))} lesion(s); research use only"
    scale = max(0.4, bgr.shape[1] / 1000)
    cv2.putText(bgr, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    ref = volume.datasets[k]
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=np.ascontiguousarray(bgr[:, :, ::-1]),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=_uid(seg_uid, "key-series"),
        series_number=int(getattr(ref, "SeriesNumber", 0) or 0) + KEY_SERIES_OFFSET,
        sop_instance_uid=_uid(seg_uid, "key"),
        instance_number=1,
        manufacturer="TumorApp",
        patient_orientation=("L", "P"),  # radiological: columns to the patient's left, rows to posterior
    )
    sc.SeriesDescription = "Liver tumour key image (research use only)"
    sc.ImageComments = f"Slice {k} of the analysed series (0 = most inferior). {text}"
    return sc
