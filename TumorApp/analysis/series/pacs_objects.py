"""The DICOM objects a result sends back to the PACS: for a series, besides its DICOM-SEG (export.py),
a TID 1500 measurement report (highdicom SR) and one Secondary Capture of the annotated key slice;
for a single DICOM slice, its SEG, SR and Secondary Capture.

No Django.  The figures come from the app's JSON (a series job's result, a slice's API payload), so
the SR says exactly what the page and the API say.  UIDs are derived from a seed fixed per result
(the series SEG's SOP Instance UID; the slice, analysis and version): sending the same result again
stores the same instances, never duplicates.
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
MM2 = hd.sr.CodedConcept("mm2", "UCUM", "square millimeter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
ONE = hd.sr.CodedConcept("1", "UCUM", "no units")
PIXELS = hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
SLICE = hd.sr.CodedConcept("{slice}", "UCUM", "slice index (0 = most inferior)")
COUNT = hd.sr.CodedConcept("{slices}", "UCUM", "slices")
SCHEME = "99TUMORAPP"


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, SCHEME, meaning)


TUMOR_VOLUME = _code("tumour-volume", "Total tumour volume")
TUMOR_BURDEN = _code("tumour-burden", "Tumour burden (tumour / liver volume)")
STAGE = _code("size-stage", "Size-based stage estimate (not a clinical stage)")
LABEL_VERSION = _code("label-version", "Label version (0 = the network's)")
CONFIDENCE = _code("confidence", "Network confidence (0-1)")
LOBES = {"right": hd.sr.CodedConcept("72481006", "SCT", "Right lobe of liver"),
         "left": hd.sr.CodedConcept("41801008", "SCT", "Left lobe of liver")}
PARTS = {"anterior": codes.SCT.Anterior, "posterior": codes.SCT.Posterior}
SR_SERIES_OFFSET, KEY_SERIES_OFFSET = 1001, 1002  # series numbers after the SEG's (+1000)
SEG_SERIES_OFFSET = 1000

# Where each key of the app's JSON goes in the SR, so the report carries every figure and a reader
# can find each one: numbers as TID 300 measurements (key -> concept, or a list of one concept per element
# of a list, and the unit), booleans as Yes/No evaluations, text as TID 4019 algorithm parameters
# "key=value".  Stage, side and part are coded (`stage_concept`, finding sites).
SERIES_FIGURES = {
    "liver_volume_ml": (codes.SCT.Volume, ML),
    "tumor_volume_ml": (TUMOR_VOLUME, ML),
    "tumor_burden_percent": (TUMOR_BURDEN, PERCENT),
    "slices": (_code("slices", "Slices analysed"), COUNT),
    "spacing_mm": ([_code("spacing-z", "Slice spacing"), _code("spacing-y", "Row spacing"),
                    _code("spacing-x", "Column spacing")], MM),
    "version": (LABEL_VERSION, ONE),
}
SERIES_LESION_FIGURES = {
    "volume_ml": (codes.SCT.Volume, ML),
    # Longest axial diameter: the largest in-plane Feret diameter over the lesion's slices.
    "max_diameter_mm": (codes.SCT.LongAxis, MM),
    "max_diameter_slice": (_code("long-axis-slice", "Slice of the longest axial diameter"), SLICE),
    "slice_range": ([_code("first-slice", "First slice"), _code("last-slice", "Last slice")], SLICE),
    "centroid_mm": ([_code("centroid-z", "Centroid z from the first voxel"),
                     _code("centroid-y", "Centroid y from the first voxel"),
                     _code("centroid-x", "Centroid x from the first voxel")], MM),
}
SLICE_FIGURES = {
    "affected_percent": (_code("affected", "Tumour share of the liver area"), PERCENT),
    "liver_area_px": (_code("liver-area-px", "Liver area"), PIXELS),
    "tumor_area_px": (_code("tumour-area-px", "Tumour area"), PIXELS),
    "pixel_spacing_mm": ([_code("spacing-row", "Row spacing"), _code("spacing-col", "Column spacing")], MM),
    "confidence": (CONFIDENCE, ONE),
    "version": (LABEL_VERSION, ONE),
}
SLICE_LESION_FIGURES = {
    "area_mm2": (codes.SCT.Area, MM2),
    "area_px": (_code("area-px", "Area in pixels"), PIXELS),
    "perimeter_mm": (codes.SCT.Perimeter, MM),
    "perimeter_px": (_code("perimeter-px", "Perimeter in pixels"), PIXELS),
    "eccentricity": (_code("eccentricity", "Eccentricity of the fitted ellipse"), ONE),
    "max_diameter_mm": (codes.SCT.LongAxis, MM),
    "bbox": ([_code("bbox-x", "Bounding box left column"), _code("bbox-y", "Bounding box top row"),
              _code("bbox-w", "Bounding box width"), _code("bbox-h", "Bounding box height")], PIXELS),
    "centroid": ([_code("centroid-col", "Centroid column"), _code("centroid-row", "Centroid row")], PIXELS),
    "confidence": (CONFIDENCE, ONE),
}
FLAGS = {
    "inconclusive": _code("inconclusive", "Inconclusive (no liver found)"),
    "corrected": _code("corrected", "Outline corrected by a person"),
    "tumor_detected": _code("tumour-detected", "Tumour detected"),
    "mirrored": _code("mirrored", "Image read as mirrored"),
    "low_confidence": _code("low-confidence", "Low network confidence"),
}
SERIES_TEXTS = ("stage_label", "inference", "corrected_by", "corrected_at")
SLICE_TEXTS = ("spacing_source", "inference", "corrected_by", "corrected_at")
PERSON_NAME = hd.sr.CodedConcept("121008", "DCM", "Person Observer Name")


def _uid(seed: str, *what: str) -> str:
    return generate_uid(entropy_srcs=[seed, *what])


def stage_concept(stage: str | None) -> hd.sr.CodedConcept:
    if stage:
        return hd.sr.CodedConcept(f"stage-{stage}", SCHEME, f"Stage {stage}")
    return hd.sr.CodedConcept("no-tumour", SCHEME, "No tumour detected")


def _measurements(record: dict, figures: dict, algorithm) -> list[hd.sr.Measurement]:
    out = []
    for key, (concept, unit) in figures.items():
        if record.get(key) is None:
            continue
        pairs = zip(concept, record[key]) if isinstance(concept, list) else [(concept, record[key])]
        out += [hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algorithm)
                for name, value in pairs]
    return out


def _flags(record: dict, keys) -> list[hd.sr.QualitativeEvaluation]:
    return [hd.sr.QualitativeEvaluation(name=FLAGS[k], value=codes.SCT.Yes if record[k] else codes.SCT.No)
            for k in keys if k in record]


def _algorithm(record: dict, texts=()) -> hd.sr.AlgorithmIdentification:
    parameters = [f"{k}={record[k]}" for k in texts if record.get(k) not in (None, "")]
    return hd.sr.AlgorithmIdentification(name=SOFTWARE, version=VERSION, parameters=parameters or None)


def _site(lesion: dict) -> hd.sr.FindingSite:
    return hd.sr.FindingSite(anatomic_location=LOBES[lesion["side"]], topographical_modifier=PARTS[lesion["part"]])


def _report(seed: str, record: dict, groups, evidence, series_number: int, description: str):
    """The SR document: the device as observer, and the person who corrected the outline if any."""
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid(seed, "device"), name=SOFTWARE))
    person = None
    if record.get("corrected_by"):
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=f"{record['corrected_by']}^", login_name=record["corrected_by"]))  # a user name: one PN component
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person,
                                                     observer_device_context=device),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=_uid(seed, "sr-series"),
        series_number=series_number + SR_SERIES_OFFSET,
        sop_instance_uid=_uid(seed, "sr"),
        instance_number=1,
        manufacturer="TumorApp",
        series_description=description,
        is_complete=True,
    )


def _series_number(ds: Dataset) -> int:
    return int(getattr(ds, "SeriesNumber", 0) or 0)


def structured_report(volume: SeriesVolume, record: dict, seg: Dataset) -> hd.sr.Comprehensive3DSR:
    """TID 1500 for a series: one volumetric group per lesion (`SERIES_LESION_FIGURES`, lobe and part, the
    SEG's tumour segment) and one liver group (`SERIES_FIGURES`, stage, flags, texts)."""
    seg_uid = str(seg.SOPInstanceUID)
    algorithm = _algorithm(record)
    groups = []
    for n, lesion in enumerate(record.get("lesions", []), start=1):
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seg_uid, "lesion", str(n)), identifier=f"Lesion {n}"),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=2),
            finding_type=codes.SCT.Neoplasm,
            finding_category=codes.SCT.MorphologicallyAbnormalStructure,
            algorithm_id=algorithm,
            finding_sites=[_site(lesion)],
            measurements=_measurements(lesion, SERIES_LESION_FIGURES, algorithm),
        ))
    record = {"version": 0, "corrected": False, **record}
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seg_uid, "liver"), identifier="Liver"),
        finding_type=codes.SCT.Liver,
        algorithm_id=_algorithm(record, SERIES_TEXTS),
        measurements=_measurements(record, SERIES_FIGURES, algorithm),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=STAGE, value=stage_concept(record.get("stage"))),
                                 *_flags(record, ("inconclusive", "corrected"))],
    ))
    # Evidence: the SEG and every source slice, so the SR references both series.
    return _report(seg_uid, record, groups, [seg, *volume.datasets], _series_number(volume.datasets[0]),
                   "Liver tumour measurements (research use only)")


def key_slice(record: dict, labels: np.ndarray) -> int:
    """The largest lesion's longest-diameter slice; without lesions the liver's middle slice."""
    lesions = record.get("lesions") or []
    if lesions:
        return int(lesions[0]["max_diameter_slice"])
    with_liver = np.flatnonzero((np.asarray(labels) > 0).any(axis=(1, 2)))
    return int(with_liver[len(with_liver) // 2]) if with_liver.size else labels.shape[0] // 2


def _stage_text(stage: str | None, lesions: int) -> str:
    stage = f"Stage {stage} (size estimate)" if stage else "No tumour detected"
    return f"{stage}; {lesions} lesion(s); research use only"


def _secondary_capture(ref: Dataset, bgr: np.ndarray, text: str, seed: str, orientation: tuple[str, str],
                       comments: str) -> Dataset:
    """An RGB Secondary Capture of `bgr` with `text` burnt in, in `ref`'s patient and study."""
    bgr = np.ascontiguousarray(bgr)
    scale = max(0.4, bgr.shape[1] / 1000)
    cv2.putText(bgr, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=np.ascontiguousarray(bgr[:, :, ::-1]),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=_uid(seed, "key-series"),
        series_number=_series_number(ref) + KEY_SERIES_OFFSET,
        sop_instance_uid=_uid(seed, "key"),
        instance_number=1,
        manufacturer="TumorApp",
        patient_orientation=orientation,
    )
    sc.SeriesDescription = "Liver tumour key image (research use only)"
    sc.ImageComments = f"{comments} {text}"
    return sc


def key_image(volume: SeriesVolume, record: dict, ct: np.ndarray, labels: np.ndarray, seg_uid: str) -> Dataset:
    """A Secondary Capture (RGB) of the key slice with the outlines and one line of figures burnt in, for
    viewers that cannot overlay a SEG.  Pixels are in the analysis's radiological orientation."""
    k = key_slice(record, labels)
    png = render_slice(np.asarray(ct[k]), np.asarray(labels[k]), "abdomen")
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    # Radiological: columns to the patient's left, rows to posterior.
    return _secondary_capture(volume.datasets[k], bgr, _stage_text(record.get("stage"), len(record.get("lesions", []))),
                              seg_uid, ("L", "P"), f"Slice {k} of the analysed series (0 = most inferior).")


# --- a single DICOM slice -----------------------------------------------------------------------

def patient_orientation(ds: Dataset) -> tuple[str, str]:
    """The stored rows' and columns' directions (DICOM Patient Orientation letters) from the header's
    Image Orientation (Patient); the usual axial (L, P) when it has none."""
    try:
        iop = [float(v) for v in ds.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return "L", "P"
    if len(iop) != 6:
        return "L", "P"

    def letter(vector):
        axis = int(np.argmax(np.abs(vector)))
        return ("L", "P", "H")[axis] if vector[axis] > 0 else ("R", "A", "F")[axis]

    return letter(iop[:3]), letter(iop[3:])


def slice_seed(ds: Dataset, analysis_id: int, version: int) -> str:
    """What a slice send's UIDs derive from: the source image, the analysis and its label version."""
    return f"{ds.SOPInstanceUID}/analysis-{analysis_id}/v{version}"


def slice_seg(ds: Dataset, liver: np.ndarray, tumor: np.ndarray, *, seed: str, version: int = 0,
              corrected_by: str = "") -> hd.seg.Segmentation:
    """A DICOM-SEG of one slice on its own pixel grid: segment 1 liver (tumours included), 2 tumour, as
    the series export; `version` > 0 marks a person's correction (semi-automatic)."""
    from .export import seg_description

    source = ds.copy()
    if "FrameOfReferenceUID" not in source:  # some exports omit it; the SEG needs one
        source.FrameOfReferenceUID = _uid(str(ds.SOPInstanceUID), "frame-of-reference")
    stacked = np.stack([liver | tumor, tumor], -1)[None].astype(np.uint8)
    return hd.seg.Segmentation(
        source_images=[source],
        pixel_array=stacked,
        series_instance_uid=_uid(seed, "seg-series"),
        series_number=_series_number(ds) + SEG_SERIES_OFFSET,
        sop_instance_uid=_uid(seed, "seg"),
        instance_number=1,
        omit_empty_frames=bool(stacked.any()),  # all empty: keep the frames, a SEG needs one
        **seg_description(version, corrected_by),
    )


def slice_report(ds: Dataset, record: dict, seg: Dataset, *, seed: str) -> hd.sr.Comprehensive3DSR:
    """TID 1500 for one slice: one planar group per lesion (`SLICE_LESION_FIGURES`, lobe and part,
    confidence, the SEG's tumour frame and through it the source image) and one liver group
    (`SLICE_FIGURES`, stage, flags, texts).  `record` is the slice's API payload."""
    algorithm = _algorithm(record)
    tumour_frames = [k + 1 for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence)
                     if item.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 2]
    groups = []
    for n, lesion in enumerate(record.get("tumors", []), start=1):
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seed, "lesion", str(n)), identifier=f"Lesion {n}"),
            referenced_segment=hd.sr.ReferencedSegmentationFrame.from_segmentation(
                seg, frame_number=tumour_frames[0], segment_number=2),
            finding_type=codes.SCT.Neoplasm,
            finding_category=codes.SCT.MorphologicallyAbnormalStructure,
            algorithm_id=algorithm,
            finding_sites=[_site(lesion)],
            measurements=_measurements(lesion, SLICE_LESION_FIGURES, algorithm),
            qualitative_evaluations=_flags(lesion, ("low_confidence",)),
        ))
    record = {"version": 0, "corrected": False, **record}
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(seed, "liver"), identifier="Liver"),
        finding_type=codes.SCT.Liver,
        algorithm_id=_algorithm(record, SLICE_TEXTS),
        measurements=_measurements(record, SLICE_FIGURES, algorithm),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=STAGE, value=stage_concept(record.get("stage"))),
            *_flags(record, ("tumor_detected", "inconclusive", "mirrored", "low_confidence", "corrected"))],
    ))
    return _report(seed, record, groups, [seg, ds], _series_number(ds),
                   "Liver tumour measurements, one slice (research use only)")


def slice_key_image(ds: Dataset, annotated_png: bytes, record: dict, *, seed: str) -> Dataset:
    """The result page's annotated picture as a Secondary Capture in the slice's study."""
    bgr = cv2.imdecode(np.frombuffer(annotated_png, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("the stored annotated picture cannot be read")
    who = f"; outline corrected by {record['corrected_by']}" if record.get("corrected_by") else ""
    return _secondary_capture(ds, bgr, _stage_text(record.get("stage"), len(record.get("tumors", []))) + who,
                              seed, patient_orientation(ds), "Annotated single-slice analysis.")


def slice_instances(ds: Dataset, liver: np.ndarray, tumor: np.ndarray, annotated_png: bytes, record: dict, *,
                    analysis_id: int) -> list[Dataset]:
    """[SEG, SR, key image] for one analysed DICOM slice; `record` is its API payload (the latest
    corrected version's figures, `corrected_by`, `version`), `liver`/`tumor` that version's masks."""
    version = int(record.get("version", 0))
    seed = slice_seed(ds, analysis_id, version)
    seg = slice_seg(ds, liver, tumor, seed=seed, version=version, corrected_by=record.get("corrected_by", ""))
    return [seg, slice_report(ds, record, seg, seed=seed), slice_key_image(ds, annotated_png, record, seed=seed)]
