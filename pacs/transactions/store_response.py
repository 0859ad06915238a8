"""The Store response (PS3.18 10.5.3): what became of each instance a request carried, as
the Store Instances Response Module (PS3.18 Table 10.5.3-2)."""

from typing import Any

from pacs.service.failures import FailureReason
from pacs.service.links import Links
from pacs.service.store_instances import StoreOutcome

GOOGLE_CREATOR = "GOOGLE"  # the private block FailureDetail (0009,1097) is reserved for


def response_dataset(links: Links, study: str | None, outcomes: list[StoreOutcome],
                     failure_reason: FailureReason | None) -> dict[str, Any]:
    """The response dataset as DICOM JSON; `failure_reason`, if given, stands for every
    failure's own (the detail still says what went wrong)."""
    stored, failed = [], []
    for outcome in outcomes:
        item: dict[str, Any] = {}
        if outcome.sop_class_uid:
            item["00081150"] = {"vr": "UI", "Value": [outcome.sop_class_uid]}
        if outcome.sop_uid:
            item["00081155"] = {"vr": "UI", "Value": [outcome.sop_uid]}
        if outcome.reason is not None:
            item["00081197"] = {"vr": "US", "Value": [(failure_reason or outcome.reason).code]}
            item["00090010"] = {"vr": "LO", "Value": [GOOGLE_CREATOR]}
            item["00091097"] = {"vr": "LT", "Value": [outcome.detail]}
            failed.append(item)
        else:
            item["00081190"] = {"vr": "UR", "Value": [links.instance(
                outcome.study_uid, outcome.series_uid, outcome.sop_uid)]}
            stored.append(item)
    studies = {o.study_uid for o in outcomes if o.study_uid}
    target = study or (studies.pop() if len(studies) == 1 else None)
    # RetrieveURL is Type 2 (PS3.18 Table I.1-1): empty when the parts span several studies.
    body: dict[str, Any] = {"00081190": {"vr": "UR", "Value": [links.study(target)]}
                            if target else {"vr": "UR"}}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    return body
