"""Every action of Dyplsapi 2017-05-25, and how this face answers those it does not serve.

Alibaba's SDK knows each of these actions. An action maskline does not
offer is answered as Alibaba answers an action that exists but is not open
to the account: HTTP 200 with ``isv.FORBIDDEN_ACTION`` (无权操作), after the
request's signature and the AccessKey's scope are checked as for any other.
Only a name outside this list is ``InvalidAction.NotFound`` (404). The
status of each is in docs/compat-aliyun.md.
"""

from __future__ import annotations

from maskline.compat.aliyun.interfaces import BusinessError

# The SDK's actions (alibabacloud_dyplsapi20170525 2.5.x), and QueryCallStatus
# (an action of the API that the SDK no longer wraps).
ACTIONS = frozenset(
    {
        "AddAxnTrackNo", "AddSecretBlacklist", "BindAXBCall", "BindAxb", "BindAxb700",
        "BindAxbFixedLine", "BindAxg", "BindAxn", "BindAxnExtension", "BindAxnExtensionFixedLine",
        "BindAxnFixedLine", "BindBatchAxg", "BindGxb700", "BindXB", "BuySecretNo",
        "CancelPickUpWaybill", "ConfigX", "CreateAxgGroup", "CreateFixedNoAReport",
        "CreatePhoneNoAReport", "CreatePickUpWaybill", "CreatePickUpWaybillPreQuery", "CreateSmsSign",
        "DeleteAxbBindFixedLine", "DeleteAxgGroup", "DeleteAxnBindFixedLine",
        "DeleteAxnExtensionBindFixedLine", "DeleteSecretAPhoneNoToCust", "DeleteSecretBlacklist",
        "GetDyplsOSSInfoForUploadFile", "GetSecretAsrDetail", "GetTotalPublicUrl", "GetXConfig",
        "GetXDefaultConfig", "ListXTelephones", "LockSecretNo", "OperateAxgGroup", "OperateBlackNo",
        "QueryAxbBindFixedLine", "QueryAxnBindFixedLine", "QueryAxnExtensionBindFixedLine",
        "QueryCallStatus", "QueryPhoneNoAByTrackNo", "QueryRecordFileDownloadUrl",
        "QuerySecretAPhoneNoToCust", "QuerySecretNoDetail", "QuerySecretNoRemain", "QuerySoundRecord",
        "QuerySubsId", "QuerySubscriptionDetail", "ReleaseSecretNo", "UnBindAXB", "UnBindXB",
        "UnbindSubs700", "UnbindSubscription", "UnlockSecretNo", "UpdateAxbBindFixedLine",
        "UpdateAxnBindFixedLine", "UpdateAxnExtensionBindFixedLine", "UpdateSubs700",
        "UpdateSubscription",
    }
)  # fmt: skip


def scope_of(action: str) -> str:
    """The scope an action is checked in: reading ones in ``bindings:read``."""
    return "bindings:read" if action.startswith(("Query", "Get", "List")) else "bindings:write"


def not_open(action: str) -> BusinessError:
    """The answer to an action of the API that maskline does not offer."""
    return BusinessError(
        "isv.FORBIDDEN_ACTION",
        f"{action} is not open to this account: maskline does not offer it (see docs/compat-aliyun.md)",
    )
