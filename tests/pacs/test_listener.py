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
    running = Listener(owner=user, aet="TUMORTEST", host="127.0.0.1", port=0).start()
    yield running
    running.stop()


def send(listener, datasets, *, abort=False):
    """C-STORE the data sets to the listener as a modality would; the statuses it answered."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(pydicom.uid.CTImageStorage)
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
    assoc.abort() if abort else assoc.release()
    return statuses


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
    wait_for(lambda: not list((media_root.parent / "tmp").iterdir()))  # the listener's folder is gone


def test_non_ct_and_aborted_associations_queue_nothing(listener, media_root):
    items, _ = ct_series("PACS-LSN-000007", n=2)
    mr = pydicom.dcmread(io.BytesIO(items[0][1]))
    mr.SOPClassUID = MRImageStorage
    mr.Modality = "MR"
    assert send(listener, [mr]) == ["refused"]
    assert send(listener, [pydicom.dcmread(io.BytesIO(d)) for _, d in items], abort=True) == [0, 0]
    wait_for(lambda: not list((media_root.parent / "tmp").iterdir()))  # the aborted images are dropped
    assert not SeriesJob.objects.exists()


def test_a_series_over_the_slice_limit_is_refused_and_audited(listener, media_root):
    listener.max_files = 2  # as if MAX_SLICES were 2
    items, _ = ct_series("PACS-LSN-000008", n=3)
    assert send(listener, [pydicom.dcmread(io.BytesIO(d)) for _, d in items]) == [0, 0, 0xA700]
    wait_for(lambda: AuditEvent.objects.filter(action="dicom_receive_failed").exists())
    assert "more than 2 images" in AuditEvent.objects.get(action="dicom_receive_failed").detail
    wait_for(lambda: not list((media_root.parent / "tmp").iterdir()))
    assert not SeriesJob.objects.exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the hostile sender's, on purpose
def test_uids_that_are_not_uids_are_refused(listener, media_root):
    items, _ = ct_series("PACS-LSN-000009", n=1)
    hostile = pydicom.dcmread(io.BytesIO(items[0][1]))
    hostile.SeriesInstanceUID = "../../../escape"
    assert send(listener, [hostile]) == [0xC000]
    assert not (media_root.parent / "escape").exists() and not SeriesJob.objects.exists()
