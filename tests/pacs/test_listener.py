"""The DICOM listener: a CT series sent with pynetdicom's storage SCU is queued once the association is
released, analysed, and with PACS_AUTO_SEND its results reach the PACS; non-CT is refused."""
from __future__ import annotations

import io
import time

import pydicom
import pytest
from pydicom.uid import MRImageStorage
from pynetdicom import AE

from TumorApp.series import services as series_services
from TumorApp.models import AuditEvent, PacsTransfer, SeriesJob
from TumorApp.pacs.listener import Listener
from tests.analysis.conftest import IntensitySegmenter

from .test_roundtrip import ct_series

# The listener's threads write to the database while the test reads it: each thread has its own
# connection, on MySQL/MariaDB and on SQLite's test database, a file (settings.py).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener(user, media_root):
    running = Listener(owner=user, aet="TUMORTEST", host="127.0.0.1", port=0, calling_aets=["MODALITY"]).start()
    yield running
    running.stop()


def send(listener, datasets, *, abort=False, syntax=None):
    """C-STORE the data sets to the listener as a modality would; the statuses it answered (None
    for an image the listener never answered: the association was aborted)."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(pydicom.uid.CTImageStorage, syntax or pydicom.uid.ExplicitVRLittleEndian)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate(*listener.address, ae_title="TUMORTEST")
    assert assoc.is_established
    statuses = []
    for ds in datasets:
        try:
            status = assoc.send_c_store(ds)
            statuses.append(status.Status if status else None)
        except ValueError:  # no accepted presentation context for this SOP class
            statuses.append("refused")
        except RuntimeError:  # the listener aborted the association
            statuses.append(None)
    if assoc.is_established:
        assoc.abort() if abort else assoc.release()
    return statuses


def series_datasets(patient_id: str, n: int):
    items, _ = ct_series(patient_id, n=n)
    return [pydicom.dcmread(io.BytesIO(d)) for _, d in items]


def nothing_held(media_root) -> bool:
    """No received image is left in the listener's temporary folders."""
    tmp = media_root.parent / "tmp"
    return not tmp.exists() or not list(tmp.iterdir())


def refusals():
    return list(AuditEvent.objects.filter(action="dicom_receive_failed").values_list("detail", flat=True))


def wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_stored_series_is_queued_analysed_and_auto_sent(listener, pacs_settings, orthanc, user, media_root):
    pacs_settings.PACS_AUTO_SEND = True
    items, study = ct_series("PACS-LSN-000006", n=3)
    assert send(listener, [pydicom.dcmread(io.BytesIO(d)) for _, d in items]) == [0, 0, 0]
    wait_for(lambda: SeriesJob.objects.exists())
    job = SeriesJob.objects.get()
    assert job.owner == user and job.progress_total == 3 and job.name.startswith("DICOM series")
    assert AuditEvent.objects.filter(action="dicom_receive").count() == 1
    series_services.work(once=True, segmenter=IntensitySegmenter())
    sent = PacsTransfer.objects.get(job=job, direction="send")
    assert sent.status == "done" and set(sent.sop_instance_uids) == {"seg", "sr", "key_image"}
    wait_for(lambda: nothing_held(media_root))  # the listener's folder is gone


def test_non_ct_and_aborted_associations_queue_nothing(listener, media_root):
    items, _ = ct_series("PACS-LSN-000007", n=2)
    mr = pydicom.dcmread(io.BytesIO(items[0][1]))
    mr.SOPClassUID = MRImageStorage
    mr.Modality = "MR"
    assert send(listener, [mr]) == ["refused"]
    assert send(listener, [pydicom.dcmread(io.BytesIO(d)) for _, d in items], abort=True) == [0, 0]
    wait_for(lambda: nothing_held(media_root))  # the aborted images are dropped
    assert not SeriesJob.objects.exists()


def test_a_series_over_the_slice_limit_is_refused_and_audited(listener, media_root):
    listener.max_files = 2  # as if MAX_SLICES were 2
    items, _ = ct_series("PACS-LSN-000008", n=3)
    assert send(listener, [pydicom.dcmread(io.BytesIO(d)) for _, d in items]) == [0, 0, 0xA700]
    wait_for(lambda: any(d.endswith("more than 2 images") for d in refusals()))  # the series, at release
    assert any("MODALITY" in d and "more than 2 images or" in d for d in refusals())  # the image, at once
    wait_for(lambda: nothing_held(media_root))
    assert not SeriesJob.objects.exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the hostile sender's, on purpose
def test_uids_that_are_not_uids_are_refused(listener, media_root):
    items, _ = ct_series("PACS-LSN-000009", n=1)
    hostile = pydicom.dcmread(io.BytesIO(items[0][1]))
    hostile.SeriesInstanceUID = "../../../escape"
    assert send(listener, [hostile]) == [0xC000]
    assert not (media_root.parent / "escape").exists() and not SeriesJob.objects.exists()


@pytest.mark.parametrize("calling, called", [("INTRUDER", "TUMORTEST"), ("MODALITY", "SOMEONEELSE")])
def test_an_ae_title_not_allowed_cannot_associate_and_is_audited(listener, media_root, calling, called):
    ae = AE(ae_title=calling)
    ae.add_requested_context(pydicom.uid.CTImageStorage)
    assoc = ae.associate(*listener.address, ae_title=called)
    assert not assoc.is_established and assoc.is_rejected
    wait_for(lambda: any("rejected" in d for d in refusals()))
    assert calling in refusals()[0] and not SeriesJob.objects.exists()


def test_the_listener_needs_an_allow_list_of_senders(user):
    with pytest.raises(ValueError, match="DICOM_LISTENER_CALLING_AETS"):
        Listener(owner=user, aet="TUMORTEST", host="127.0.0.1", port=0, calling_aets=[])


def test_images_past_the_association_cap_are_refused_at_once(listener, media_root):
    listener.limits.max_instances = 2
    assert send(listener, series_datasets("PACS-LSN-000010", 3)) == [0, 0, 0xA700]
    wait_for(lambda: any("more than 2 images in one association" in d for d in refusals()))
    wait_for(lambda: SeriesJob.objects.exists())  # the two accepted images are still a series


def test_an_image_over_the_file_budget_is_refused_before_it_is_kept(listener, media_root):
    listener.limits.max_file_bytes = 64 * 1024  # a 512 x 512 CT slice is about 0.5 MiB
    assert send(listener, series_datasets("PACS-LSN-000011", 1)) == [0xA700]
    wait_for(lambda: any("an image of more than" in d for d in refusals()))
    wait_for(lambda: nothing_held(media_root))
    assert not SeriesJob.objects.exists()


def test_a_deflated_image_is_refused_by_what_it_inflates_to(listener, media_root):
    ds = series_datasets("PACS-LSN-000012", 1)[0]
    ds.PixelData = bytes(len(ds.PixelData))  # zeros: deflates to almost nothing
    listener.limits.max_file_bytes = 256 * 1024  # the deflated file is far smaller, the image is not
    assert send(listener, [ds], syntax=pydicom.uid.DeflatedExplicitVRLittleEndian) == [0xA700]
    wait_for(lambda: any("inflates to more than" in d for d in refusals()))
    assert not SeriesJob.objects.exists()


def test_an_association_over_its_byte_budget_is_aborted_while_it_sends(listener, media_root):
    listener.limits.max_association_bytes = 700 * 1024  # one slice fits, the second does not
    statuses = send(listener, series_datasets("PACS-LSN-000013", 3))
    assert statuses[0] == 0 and None in statuses[1:]
    wait_for(lambda: any("in one association" in d for d in refusals()))
    wait_for(lambda: nothing_held(media_root))  # nothing half-received is kept
    assert not SeriesJob.objects.exists()


def test_series_past_the_hourly_cap_are_refused_and_audited(listener, media_root):
    listener.limits.series_per_hour = 0
    assert send(listener, series_datasets("PACS-LSN-000014", 2)) == [0, 0]
    wait_for(lambda: any("series received in the last hour" in d for d in refusals()))
    wait_for(lambda: nothing_held(media_root))
    assert not SeriesJob.objects.exists()
