from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def test_default_storage_is_the_local_s3_bucket(s3_storage):
    import requests

    key = default_storage.save("probe/a.bin", ContentFile(b"bytes"))
    assert s3_storage.keys() == ["probe/a.bin"]
    assert requests.get(default_storage.url(key), timeout=5).content == b"bytes"
    forged = default_storage.url(key)[:-1] + "0"
    assert requests.get(forged, timeout=5).status_code == 403
