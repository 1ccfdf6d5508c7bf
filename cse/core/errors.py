"""One exception per oneM2M Response Status Code, translated once.

Any layer raises the exception that names the situation; the dispatcher turns
it into a Response with that RSC and ``{"m2m:dbg": message}``. The single
RSC -> HTTP table lives here too (TS-0009 Table 6.3.2-1; docs/onem2m.md "Status codes").
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "RSC",
    "HTTP_STATUS",
    "http_status",
    "M2MError",
    "BadRequest",
    "NotFound",
    "OperationNotAllowed",
    "RequestTimeout",
    "BlockingSubscriptionAlreadyExists",
    "OperationDeniedByRemoteEntity",
    "UnsupportedMediaType",
    "SubscriptionCreatorHasNoPrivilege",
    "ContentsUnacceptable",
    "OriginatorHasNoPrivilege",
    "Conflict",
    "OriginatorNotAuthenticated",
    "InvalidChildResourceType",
    "OriginatorHasAlreadyRegistered",
    "ReleaseVersionNotSupported",
    "InternalServerError",
    "NotImplementedOp",
    "TargetNotReachable", "NotListening",
    "ReceiverHasNoPrivilege",
    "AlreadyExists",
    "RemoteEntityNotReachable",
    "TargetNotSubscribable",
    "SubscriptionVerificationInitiationFailed",
    "SubscriptionHostHasNoPrivilege",
    "NonBlockingSynchNotSupported",
    "NotAcceptable",
    "UnableToRecallRequest",
    "GroupMemberTypeInconsistent",
    "MaxNumberOfMemberExceeded",
]


class RSC(IntEnum):
    """The response status codes this CSE produces or relays."""

    ACCEPTED = 1000
    ACCEPTED_NON_BLOCKING_SYNCH = 1001
    ACCEPTED_NON_BLOCKING_ASYNCH = 1002
    OK = 2000
    CREATED = 2001
    DELETED = 2002
    UPDATED = 2004
    BAD_REQUEST = 4000
    RELEASE_VERSION_NOT_SUPPORTED = 4001
    NOT_FOUND = 4004
    OPERATION_NOT_ALLOWED = 4005
    REQUEST_TIMEOUT = 4008
    UNSUPPORTED_MEDIA_TYPE = 4015
    SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE = 4101
    CONTENTS_UNACCEPTABLE = 4102
    ORIGINATOR_HAS_NO_PRIVILEGE = 4103
    GROUP_REQUEST_IDENTIFIER_EXISTS = 4104
    CONFLICT = 4105
    ORIGINATOR_NOT_AUTHENTICATED = 4106
    SECURITY_ASSOCIATION_REQUIRED = 4107
    INVALID_CHILD_RESOURCE_TYPE = 4108
    GROUP_MEMBER_TYPE_INCONSISTENT = 4110
    ORIGINATOR_HAS_ALREADY_REGISTERED = 4117
    BLOCKING_SUBSCRIPTION_ALREADY_EXISTS = 4124
    OPERATION_DENIED_BY_REMOTE_ENTITY = 4127
    INTERNAL_SERVER_ERROR = 5000
    NOT_IMPLEMENTED = 5001
    TARGET_NOT_REACHABLE = 5103
    RECEIVER_HAS_NO_PRIVILEGE = 5105
    ALREADY_EXISTS = 5106
    REMOTE_ENTITY_NOT_REACHABLE = 5107
    TARGET_NOT_SUBSCRIBABLE = 5203
    SUBSCRIPTION_VERIFICATION_INITIATION_FAILED = 5204
    SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE = 5205
    NON_BLOCKING_SYNCH_REQUEST_NOT_SUPPORTED = 5206
    NOT_ACCEPTABLE = 5207
    UNABLE_TO_RECALL_REQUEST = 5220
    MAX_NUMBER_OF_MEMBER_EXCEEDED = 6010


HTTP_STATUS: dict[int, int] = {
    1000: 202, 1001: 202, 1002: 202,
    2000: 200, 2001: 201, 2002: 200, 2004: 200,
    4000: 400, 4001: 501, 4004: 404, 4005: 405, 4008: 504, 4015: 415,
    4101: 403, 4102: 400, 4103: 403, 4104: 409, 4105: 409, 4106: 403,
    4107: 403, 4108: 403, 4109: 403, 4110: 400, 4111: 403, 4112: 403,
    4113: 403, 4114: 403, 4115: 403, 4116: 403, 4117: 403, 4118: 404,
    4119: 404, 4120: 400, 4121: 404, 4122: 400, 4123: 400, 4124: 409,
    4125: 501, 4126: 403, 4127: 403, 4128: 403, 4143: 400,
    5000: 500, 5001: 501, 5103: 404, 5105: 403, 5106: 409, 5107: 404,
    5203: 403, 5204: 500, 5205: 403, 5206: 501, 5207: 406, 5208: 403,
    5209: 500, 5210: 500, 5211: 500, 5212: 500, 5214: 403, 5215: 403,
    5216: 500, 5217: 500, 5218: 403, 5219: 409, 5220: 409, 5221: 500,
    5222: 403,
    6003: 404, 6005: 404, 6010: 400, 6020: 500, 6021: 500, 6022: 400,
    6023: 400, 6024: 400, 6025: 500, 6026: 500, 6028: 409, 6029: 409,
    6030: 504, 6031: 504,
}


def http_status(rsc: int) -> int:
    """HTTP status for an RSC; unknown codes fall back by class."""
    status = HTTP_STATUS.get(rsc)
    if status is not None:
        return status
    if 1000 <= rsc < 2000:
        return 202
    if 2000 <= rsc < 3000:
        return 200
    if 4000 <= rsc < 5000:
        return 400
    return 500


class M2MError(Exception):
    """Base of all oneM2M errors; ``message`` becomes ``m2m:dbg``."""

    rsc: RSC = RSC.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(M2MError):
    """4000: malformed request or content."""

    rsc = RSC.BAD_REQUEST


class ReleaseVersionNotSupported(M2MError):
    """4001: X-M2M-RVI unsupported."""

    rsc = RSC.RELEASE_VERSION_NOT_SUPPORTED


class NotFound(M2MError):
    """4004: target or referenced resource missing."""

    rsc = RSC.NOT_FOUND


class OperationNotAllowed(M2MError):
    """4005: operation not allowed on this type."""

    rsc = RSC.OPERATION_NOT_ALLOWED


class RequestTimeout(M2MError):
    """4008: request expired."""

    rsc = RSC.REQUEST_TIMEOUT


class UnsupportedMediaType(M2MError):
    """4015: body media type unsupported."""

    rsc = RSC.UNSUPPORTED_MEDIA_TYPE


class SubscriptionCreatorHasNoPrivilege(M2MError):
    """4101."""

    rsc = RSC.SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE


class ContentsUnacceptable(M2MError):
    """4102: content not acceptable."""

    rsc = RSC.CONTENTS_UNACCEPTABLE


class OriginatorHasNoPrivilege(M2MError):
    """4103: access denied."""

    rsc = RSC.ORIGINATOR_HAS_NO_PRIVILEGE


class Conflict(M2MError):
    """4105: name already used among siblings."""

    rsc = RSC.CONFLICT


class OriginatorNotAuthenticated(M2MError):
    """4106."""

    rsc = RSC.ORIGINATOR_NOT_AUTHENTICATED


class InvalidChildResourceType(M2MError):
    """4108: child type not allowed."""

    rsc = RSC.INVALID_CHILD_RESOURCE_TYPE


class OriginatorHasAlreadyRegistered(M2MError):
    """4117."""

    rsc = RSC.ORIGINATOR_HAS_ALREADY_REGISTERED


class BlockingSubscriptionAlreadyExists(M2MError):
    """4124: the resource already has a blockingUpdate (net 7) subscription (TS-0004 7.5.1)."""

    rsc = RSC.BLOCKING_SUBSCRIPTION_ALREADY_EXISTS


class OperationDeniedByRemoteEntity(M2MError):
    """4127: the subscriber of a blockingUpdate (net 7) subscription refused the UPDATE."""

    rsc = RSC.OPERATION_DENIED_BY_REMOTE_ENTITY


class InternalServerError(M2MError):
    """5000: a bug, never bad input."""

    rsc = RSC.INTERNAL_SERVER_ERROR


class NotImplementedOp(M2MError):
    """5001: not implemented."""

    rsc = RSC.NOT_IMPLEMENTED


class TargetNotReachable(M2MError):
    """5103: next hop or target unreachable."""

    rsc = RSC.TARGET_NOT_REACHABLE


class NotListening(TargetNotReachable):
    """5103 where nothing listens at the address (connection refused): a
    peer that is not up, or not up yet -- told apart so that a CSE started
    before its registrar does not warn about what is normal (docs/troubleshooting.md)."""


class ReceiverHasNoPrivilege(M2MError):
    """5105."""

    rsc = RSC.RECEIVER_HAS_NO_PRIVILEGE


class AlreadyExists(M2MError):
    """5106."""

    rsc = RSC.ALREADY_EXISTS


class RemoteEntityNotReachable(M2MError):
    """5107."""

    rsc = RSC.REMOTE_ENTITY_NOT_REACHABLE


class TargetNotSubscribable(M2MError):
    """5203: parent takes no subscription."""

    rsc = RSC.TARGET_NOT_SUBSCRIBABLE


class SubscriptionVerificationInitiationFailed(M2MError):
    """5204: verification failed."""

    rsc = RSC.SUBSCRIPTION_VERIFICATION_INITIATION_FAILED


class SubscriptionHostHasNoPrivilege(M2MError):
    """5205."""

    rsc = RSC.SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE


class NonBlockingSynchNotSupported(M2MError):
    """5206."""

    rsc = RSC.NON_BLOCKING_SYNCH_REQUEST_NOT_SUPPORTED


class NotAcceptable(M2MError):
    """5207: not acceptable / too large."""

    rsc = RSC.NOT_ACCEPTABLE


class UnableToRecallRequest(M2MError):
    """5220."""

    rsc = RSC.UNABLE_TO_RECALL_REQUEST


class GroupMemberTypeInconsistent(M2MError):
    """A group member is not of the group's memberType and its consistencyStrategy abandons the group."""

    rsc = RSC.GROUP_MEMBER_TYPE_INCONSISTENT


class MaxNumberOfMemberExceeded(M2MError):
    """A group would hold more members than its maxNrOfMembers."""

    rsc = RSC.MAX_NUMBER_OF_MEMBER_EXCEEDED
